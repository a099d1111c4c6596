"""Cross-sell association rules mined from customers' holdings: apriori, vectorised over
customers (see `rules` for how, and why it is hand-written rather than mlxtend).

Using a rule in a segment: a rule X -> Y with high lift says customers holding X but not yet Y are
likely takers of Y. The segment that targets them reads the customer's `product_categories`
(for TERM_DEPOSIT -> FUND with lift above the campaign's bar, say 1.5, checked at mining time):

    "TERM_DEPOSIT" in product_categories && !("FUND" in product_categories)

and for a two-category antecedent {PAYROLL, CREDIT_CARD} -> WEALTH:

    "PAYROLL" in product_categories && "CREDIT_CARD" in product_categories
        && !("WEALTH" in product_categories)

The lift threshold (`min_lift`) is applied when mining, not in CEL: the rule's lift is a property
of the population, not of one customer.
"""
