"""Derived customer features (RFM, AUM, activity, tenure, lifecycle inputs); see `service`."""
