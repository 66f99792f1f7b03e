"""Reusable views: heatmap, token strip, probability bars, ..."""
