"""Build the Flask app. Routes point at functions of flask_demo.views; a
refresh patches those functions in place, so the routes keep working."""
from flask import Flask

from flask_demo import views


def create_app():
    app = Flask("flask_demo")
    app.add_url_rule("/", "index", views.index)
    app.add_url_rule("/hello/<name>", "hello", views.hello)
    app.add_url_rule("/stats", "stats", views.stats)
    return app
