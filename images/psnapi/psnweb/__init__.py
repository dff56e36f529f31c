"""PSN's own web services: the API, the admin panel and client autoconfiguration."""
