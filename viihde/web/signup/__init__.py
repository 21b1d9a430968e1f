"""Sign-up: the landing page, the one-time code and the privacy notice."""
