"""Identity resolution: match rules, candidate pairs, merges with lineage, unmerge, lookup."""
