"""The sharing policy: rules IG leads write in YAML, evaluated per message and recipient.

``rules`` holds the typed rule model, ``facts`` what a message says about itself,
``evaluate`` the pure decision procedure, ``document`` reading and checking policy files.
"""
