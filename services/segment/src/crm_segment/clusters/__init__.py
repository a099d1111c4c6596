"""Customer clustering: k-means over chosen numeric features, k fixed or chosen by silhouette,
with per-cluster profiles in the features' own units. See `rules` for scaling and missing values."""
