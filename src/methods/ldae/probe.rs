//! Linear probes on the semantic code (logistic for binary labels, ridge for continuous ones) and attribute manipulation along them.
