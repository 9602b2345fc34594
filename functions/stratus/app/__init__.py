"""Use cases: what happens on upload, download, sync, reconcile and login, on ports only.

Web routers, Lambda handlers and the CLI call these modules; these modules call ports
(``stratus.ports``) and the pure ``stratus.domain``, never an adapter or a framework.
"""
