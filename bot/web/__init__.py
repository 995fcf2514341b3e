"""The web service: the app factory, Twilio's webhooks, the alert webhooks, request security and serving."""
