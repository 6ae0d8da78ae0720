"""The gateway agent: the edge end of the cloud link, the offline outbox, and the pod runtime.

Nothing lives here yet: today ``edgetwin node`` hosts the twin service directly. The cloud link
(DESIGN.md §6) and the pod runtime (§9) are planned work.
"""
