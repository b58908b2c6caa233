"""Merchant onboarding: the application's rules (ID number, mobile, settlement card, business licence,
photos), the automatic checks, the review workflow, MID/TID allocation, fee plans, terminal provisioning
with TMK delivery (TR-31 or a simulator profile), and the merchant and terminal lifecycle.

Pure core: `idcard`, `uscc`, `business`, `areas`, `form`, `images`, `feeplan`, `identifiers`, `workflow`.
Store functions (plain functions of a `Session`; the caller owns the unit of work): `applications`,
`review`, `provisioning`, `lifecycle`, `audit`, `queries`. File I/O: `uploads`.
"""
