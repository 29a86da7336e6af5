"""The audit: protocols, runs, statistics, verdicts and reports for TransFG."""
