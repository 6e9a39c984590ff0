"""The server the guide works on: how it is reached, its certificate, its mailboxes."""
