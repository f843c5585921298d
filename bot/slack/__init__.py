"""Everything people see in Slack: the texts, the renderers and the one Web API gateway."""
