"""The web console: server-rendered pages over the same operations as the API (`pages` for what is shown,
`forms` for what is posted), zh/en labels (`i18n`)."""
