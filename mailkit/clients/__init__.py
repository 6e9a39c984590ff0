"""Real clients from another host: swaks, smtplib and imaplib, the load sender, the header explainer."""
