"""The share-image bot: `/share-image` in Slack adds image members on Samsung Cloud Platform."""
