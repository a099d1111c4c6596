"""The decision audit: every automated decision risk makes about a customer (an alert raised, a
suitability check, a churn score), written in the decision's own transaction, never changed."""
