"""``POST …/pods/{name}/binding``: assigning a pod to a node, as a scheduler does.

The verb kube-scheduler (or any binder) uses: the body is a ``v1 Binding`` naming the node in
``target``. The pod gets ``spec.nodeName`` once, and the condition ``PodScheduled`` = ``True``;
binding a pod that is bound already, being deleted, or whose uid is not the one the Binding
names is a 409, as on the real server.
"""

from __future__ import annotations

from typing import Any

from api_server.errors import BadRequest, Cause, Conflict, Invalid
from api_server.meta import keep_server_fields, now_timestamp
from api_server.operations import Operations
from api_server.resources import ResourceType
from api_server.storage import copy_object

__all__ = ["bind"]

Object = dict[str, Any]


def bind(ops: Operations, rtype: ResourceType, namespace: str, name: str, body: Any) -> Object:
    """Bind pod ``name`` to the node ``body`` names; returns the ``Status`` to answer with."""
    if not isinstance(body, dict) or body.get("kind", "Binding") != "Binding":
        raise BadRequest("the body of a binding must be a v1 Binding")
    target = body.get("target")
    node = target.get("name") if isinstance(target, dict) else None
    if not isinstance(node, str) or not node:
        raise Invalid("Binding", "", name, [Cause("target.name", "Required value", "FieldValueRequired")])
    pod = ops.get(rtype, namespace, name)
    meta = pod["metadata"]
    uid = (body.get("metadata") or {}).get("uid") if isinstance(body.get("metadata"), dict) else None
    if uid and uid != meta.get("uid"):
        raise Conflict(
            f'Operation cannot be fulfilled on pods/binding "{name}": Precondition failed: UID in '
            f"precondition: {uid}, UID in object meta: {meta.get('uid')}"
        )
    if meta.get("deletionTimestamp"):
        raise Conflict(f"pod {name} is being deleted, cannot be assigned to a host")
    bound = (pod.get("spec") or {}).get("nodeName")
    if bound:
        raise Conflict(f'pod {name} is already assigned to node "{bound}"')
    new = copy_object(ops.store.get(rtype.key, namespace, name) or pod)
    new.setdefault("spec", {})["nodeName"] = node
    status = new.setdefault("status", {})
    conditions = [
        c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") != "PodScheduled"
    ]
    conditions.insert(0, {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_timestamp()})
    status["conditions"] = conditions
    old = ops.store.get(rtype.key, namespace, name)
    assert old is not None  # ops.get found it, and nothing runs between
    keep_server_fields(old, new, namespaced=True)
    ops.store.write(rtype.key, new, "MODIFIED")
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
