"""Alerts raised by the alert rules and their 24-hour workflow: acknowledge, assign, resolve,
dismiss, escalation by the clock worker at the response deadline, and the response report."""
