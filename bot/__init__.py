"""Operator's service side, in rooms: web/, sms/, core/, state/, db/, alerting/, charts/, dashboard/, cli/.

ARCHITECTURE.md walks through them.
"""
