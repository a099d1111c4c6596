"""The managers' early-warning list: customers at risk of leaving, from their current churn score
and their open alerts, with the reasons and a suggested retention action."""
