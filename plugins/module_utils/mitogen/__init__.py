# Copyright (c) 2026 ns.mitogen contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ns.mitogen core: persistent Python interpreters driven over framed RPC.

Everything in this package uses the standard library only and runs on the
controller, on intermediaries and on targets (Python 3.6+ there: the source is
lowered for them on the controller, see ``_lower``). The public
entry point is ``api``; every ``_``-prefixed module is private.
"""
