"""Credit rating inputs, churn attribution and account flow: reports from risk's read model."""
