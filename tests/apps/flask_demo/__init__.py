"""The demo service: app.py builds the Flask app, views.py holds the views."""
