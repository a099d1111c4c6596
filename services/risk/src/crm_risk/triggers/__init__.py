"""Alert rules evaluated as profile's feed events arrive (the customer follower's `after_apply`)."""
