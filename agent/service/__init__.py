"""The service layer: operations a remote controller asks for (the HTTP API and the CLI
call these), each all-or-nothing against XAPI."""
