"""Why a customer is or is not in a segment: each top-level clause of the rule evaluated on the
customer's values as the read model holds them now."""
