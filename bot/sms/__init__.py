"""Texting: GSM-7 encoding and segments, replies cut into pages, the Twilio REST sender, masked numbers."""
