"""HTTP routes: participant pages, researcher console, JSON API."""
