"""Kibana saved objects (data views, dashboards, searches, alert rules) and their loader."""
