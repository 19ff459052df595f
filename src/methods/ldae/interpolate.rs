//! Missing-scan synthesis: semantic code lerped, inverted noise slerped, decoded; baselines and scores.
