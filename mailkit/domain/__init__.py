"""What a domain publishes: records as desired state, reading them back, publishing them by RFC 2136."""
