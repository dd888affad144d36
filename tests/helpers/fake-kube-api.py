#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A fake Kubernetes API server for kima's tests: the only stand-in of the
test suite, since no real API server can run on the build machines.

Faithful to the real one for what kima uses:
  GET   /api/v1/pods[?fieldSelector=spec.nodeName=N]      PodList with resourceVersion
        &limit=N&continue=T   paged as the API server pages (sorted by namespace
        and name; metadata.continue names the next page, metadata.resourceVersion
        is the first page's); a token older than the watch history is 410
        Gone, reason Expired. (The later pages show the pods as they are now,
        not as of the first page: a watch from the list's resourceVersion
        replays what changed meanwhile, which is all kima needs.)
  GET   /api/v1/pods?watch=1&resourceVersion=RV[&allowWatchBookmarks=true]
        [&timeoutSeconds=N]    newline-delimited JSON events over chunked
        transfer: {"type": ADDED|MODIFIED|DELETED, "object": pod} for every
        change after RV (RV "" or "0": ADDED for every pod first), BOOKMARK
        events carrying only metadata.resourceVersion (every
        --bookmark-seconds), the stream ended after timeoutSeconds; an RV
        older than the history kept (--watch-history changes) is answered
        with an ERROR event carrying a Status, code 410, reason Expired.
        Resource versions are strings (digits here, opaque to clients).
  GET   /api/v1/namespaces/NS/pods[/NAME]
  PATCH /api/v1/namespaces/NS/pods/NAME   only application/merge-patch+json
        (RFC 7386) or application/strategic-merge-patch+json; other types 415;
        label keys and values validated like the API server (422 Invalid); a
        metadata.uid in the patch must be the pod's (409 Conflict otherwise)
        Each write of a pod is recorded in its metadata.managedFields as the API
        server does (manager: the User-Agent up to its first "/", operation
        Update, fieldsV1 naming the labels and annotations written)
  POST  /api/v1/namespaces/NS/pods/NAME/eviction   a policy/v1 Eviction (400 when the body is
        not one for this pod; 409 Conflict when deleteOptions.preconditions.uid is not the
        pod's); 201 with a Success Status and the pod deleted (a DELETED watch event); 429
        TooManyRequests with the API server's Status when a disruption budget refuses it
        (/_fake/pdb); 404 NotFound for no such pod
  GET   /api/v1/nodes/NAME                  a Node (only those added by /_fake/nodes); 404
  PATCH /api/v1/nodes/NAME                  JSON merge patch only (415 otherwise); a
        metadata.resourceVersion in the patch must be the current one (409 Conflict, "the
        object has been modified"); spec.taints validated (422 Invalid: a taint without key,
        an unknown effect, the same key and effect twice); each write a new resourceVersion
  POST  /api/v1/namespaces/NS/events      201; generateName honoured
  GET   /apis/coordination.k8s.io/v1/namespaces/NS/leases/NAME   200, or 404 NotFound
  POST  /apis/coordination.k8s.io/v1/namespaces/NS/leases        201; 409 AlreadyExists;
        a resourceVersion in the body is refused (500, as the API server's store does)
  PUT   /apis/coordination.k8s.io/v1/namespaces/NS/leases/NAME   200; 409 Conflict when
        metadata.resourceVersion is not the current one; 422 Invalid without one; 404 when
        there is no such Lease (a Lease is not created by an update); 400 when the body
        names another object
        Leases are validated as the API server does (422 Invalid: holderIdentity a string,
        leaseDurationSeconds > 0, leaseTransitions >= 0, times RFC 3339 with microseconds);
        each write gives a new resourceVersion.
  POST  /apis/authentication.k8s.io/v1/tokenreviews   201 with the TokenReview: its spec
        echoed (the token too, as the API server does) and a status: for a token defined by
        /_fake/tokens, not expired, with an audience among spec.audiences (default
        ["https://kubernetes.default.svc"]): authenticated true, user (username, uid,
        groups, extra with the pod's and, unless "node" is null, the node's
        authentication.kubernetes.io/ claims) and the audiences that matched; any other
        token: no "authenticated" (false) and an "error" like the API server's. A body of
        another kind is 400 BadRequest, one without spec.token 422 Invalid; only application/json
        (415); the --readonly-token cannot create (403).
Errors are v1 Status objects. Authentication: a bearer token (--token, full
rights; --readonly-token, reads only: 403 on writes) or a client certificate
signed by --client-ca; none or a wrong one is 401.

Test controls, no authentication, under /_fake/:
  GET  /_fake/state                      {"pods": [...], "events": [...], "requests": [...]}
  POST /_fake/pods      {pod}            add or replace a pod (uid, namespace, name, labels, nodeName)
  POST /_fake/fail      {"method": "PATCH", "status": 409, "count": 2[, "path": "/leases"]}
                                          the next COUNT matching API requests (method, and
                                          path containing PATH when given) get STATUS;
                        {"clear": true}  no more injected failures
  POST /_fake/lease     {"namespace": NS, "name": N, "spec": {...}}   set a Lease (any
                        content, unvalidated: a hostile one too; "object" replaces it whole);
                        {"namespace": NS, "name": N, "delete": true}  remove it;
                        {"namespace": NS, "name": N, "expire": true}  its renewTime an hour ago
  POST /_fake/tamper    {"namespace": NS, "name": N, "labels": {...}, "annotations": {...},
                         "manager": "kubectl-label"}
                                          another user patches the pod (merge: null removes a
                                          key): a new resourceVersion, a managedFields entry
                                          of that manager, a MODIFIED watch event
  POST /_fake/pdb       {"namespace": NS, "name": N, "count": 2}   the next COUNT evictions of
                                          that pod (name "*": of any pod) are refused with
                                          429 as a PodDisruptionBudget refuses them;
                        {"clear": true}  none
  POST /_fake/nodes     {"name": N, "taints": [...]}   add or replace a Node;
                        {"name": N, "race_taint": {taint}}   right after the next GET of
                                          the node, another writer adds that taint (a new
                                          resourceVersion): a write based on the GET is 409
  POST /_fake/down      {"seconds": 3}   every API request is 503 for that long
  POST /_fake/delete    {"namespace": NS, "name": NAME}
                                          the pod is gone at once (kubectl delete --force)
  POST /_fake/slow      {"seconds": 8, "delay": 3}
                                          for that long every API request is answered
                                          `delay` seconds late
  POST /_fake/watch     {"hold": true|false, "close": true, "compact": true,
                         "history": N, "bookmark_seconds": S, "garbage": "LINE",
                         "expire_continue": N, "end_at_once": true|false}
                                          hold: watch events are not sent until released;
                                          close: every open watch ends now;
                                          compact: the history is dropped (a watch from
                                          an RV before now gets 410);
                                          history: keep at most N events;
                                          garbage: the next event line sent is LINE
                                          (repeated "repeat" times);
                                          expire_continue: the next N continue tokens
                                          get 410 Expired;
                                          end_at_once: every watch is answered 200 and
                                          ended at once (a broken server or proxy)
  POST /_fake/api-token {"token": T}  T replaces --token: the old one is 401 from now on
                                          (a rotated service account token)
  POST /_fake/tokens    {"token": T, "username": U, "audiences": [...], "node": N|null,
                         "nodes": [...], "expired": true|false}   define a token for
                                          TokenReviews ("nodes" replaces the node claim's
                                          list whole); {"clear": true} forgets them all
  GET /_fake/state also has "reviews" (TokenReviews answered), "reviewed" (how many
  of each token), "nodes", "evictions" (each eviction request: namespace, name, uid,
  status) and "leases" (every Lease) and each request's "agent"
  (User-Agent) and "status"; it counts "lists" (LISTs of /api/v1/pods without a
  continue token), "pages" and "watches" (watch requests answered), and
  says the newest resourceVersion an event sent on a watch had ("sent_rv").
Usage: fake-kube-api.py --cert PEM --key PEM [--client-ca PEM] --token T
       [--readonly-token T] [--pods PODLIST.json] [--watch-history N]
       [--bookmark-seconds S] [--port N] [--down-seconds S] [--down-requests N]
       --port-file F
(--down-seconds: every API request is 503 for that long after the start;
--down-requests: the first N API requests are 503, however late they come)
"""
import argparse
import base64
import copy
import json
import re
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()
PODS = {}  # (ns, name) -> pod object
LEASES = {}  # (ns, name) -> Lease object
NODES = {}  # name -> Node object
NODE_RACES = {}  # name -> a taint another writer adds right after the next GET
PDB = {}  # (ns, name) or ("*", "*") -> evictions still refused
EVICTIONS = []
EVENTS = []
REQUESTS = []
FAILS = []
REVIEWED = {}  # token -> TokenReviews of it answered
TOKENS = {}  # token -> {"username", "audiences", "node", "nodes", "expired"}
STATE = {"rv": 1000, "down_until": 0.0, "slow_until": 0.0, "slow_delay": 0.0,
         "floor": 1000, "lists": 0, "pages": 0, "watches": 0, "hold": False,
         "closed": 0, "history": 1000, "bookmark_s": 1.0, "garbage": None, "sent_rv": 0, "expire_continue": 0,
         "end_at_once": False, "reviews": 0}
HISTORY = []  # (rv as int, type, object): every change after STATE["floor"]
COND = threading.Condition(LOCK)
ARGS = None

NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def next_rv():
    STATE["rv"] += 1
    return str(STATE["rv"])


def emit(kind, pod):
    """Record a change for the watches (under LOCK). A deletion gets a
    resourceVersion of its own, as the API server gives it."""
    obj = copy.deepcopy(pod)
    if kind == "DELETED":
        obj["metadata"]["resourceVersion"] = next_rv()
    HISTORY.append((int(obj["metadata"]["resourceVersion"]), kind, obj))
    while len(HISTORY) > STATE["history"]:
        STATE["floor"] = HISTORY.pop(0)[0]
    COND.notify_all()


def put_pod(pod):
    """Add or replace a pod (under LOCK): a pod under an existing name with
    another UID replaces it, as a forced delete and a create would."""
    key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
    old = PODS.get(key)
    if old and old["metadata"]["uid"] != pod["metadata"]["uid"]:
        emit("DELETED", old)
        old = None
    PODS[key] = pod
    emit("MODIFIED" if old else "ADDED", pod)


def list_pods(items, q):
    """One page of a PodList (under LOCK)."""
    items = sorted(items, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    md = {"resourceVersion": str(STATE["rv"])}
    token = q.get("continue", [""])[0]
    if token:
        try:
            t = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, after = int(t["rv"]), tuple(t["after"])
        except (ValueError, KeyError, TypeError):
            return status(400, "BadRequest", "invalid continue token")
        if rv < STATE["floor"] or STATE["expire_continue"] > 0:
            STATE["expire_continue"] = max(STATE["expire_continue"] - 1, 0)
            return status(410, "Expired", "The provided continue parameter is too old to display "
                          "a consistent list result. You can start a new list without the "
                          "continue parameter.")
        items = [p for p in items if (p["metadata"]["namespace"], p["metadata"]["name"]) > after]
        md["resourceVersion"] = str(rv)
    else:
        STATE["lists"] += 1
    STATE["pages"] += 1
    try:
        limit = int(q.get("limit", ["0"])[0])
    except ValueError:
        return status(400, "BadRequest", "invalid limit")
    if limit > 0 and len(items) > limit:
        md["remainingItemCount"] = len(items) - limit
        items = items[:limit]
        last = items[-1]["metadata"]
        md["continue"] = base64.urlsafe_b64encode(json.dumps(
            {"rv": int(md["resourceVersion"]),
             "after": [last["namespace"], last["name"]]}).encode()).decode()
    return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": md, "items": items}


def status(code, reason, message):
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": message, "reason": reason, "code": code}


def valid_label_key(k):
    prefix, _, name = k.rpartition("/")
    if prefix and (len(prefix) > 253 or not PREFIX_RE.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(NAME_RE.match(name))


def merge(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge(target.get(k), v)
    return target


MICROTIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
LEASE_PATH_RE = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([^/]+)/leases(/([^/]+))?$")


def micro_now(offset=0.0):
    t = time.time() + offset
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


def lease_invalid(obj):
    """What the API server's validation refuses in a Lease, or None."""
    if obj.get("kind", "Lease") != "Lease" or \
            obj.get("apiVersion", "coordination.k8s.io/v1") != "coordination.k8s.io/v1":
        return status(400, "BadRequest", "the object is not a coordination.k8s.io/v1 Lease")
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        return status(400, "BadRequest", "spec is not an object")
    h = spec.get("holderIdentity")
    d = spec.get("leaseDurationSeconds")
    t = spec.get("leaseTransitions")
    if h is not None and not isinstance(h, str):
        return status(400, "BadRequest", "spec.holderIdentity: not a string")
    for k in ("leaseDurationSeconds", "leaseTransitions"):
        v = spec.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v >= 2 ** 31):
            return status(400, "BadRequest", "spec.%s: not an int32" % k)
    if d is not None and d <= 0:
        return status(422, "Invalid", "spec.leaseDurationSeconds: Invalid value: %d: must be "
                      "greater than 0" % d)
    if t is not None and t < 0:
        return status(422, "Invalid", "spec.leaseTransitions: Invalid value: %d: must be "
                      "greater than or equal to 0" % t)
    for k in ("acquireTime", "renewTime"):
        v = spec.get(k)
        if v is not None and (not isinstance(v, str) or not MICROTIME_RE.match(v)):
            return status(400, "BadRequest", "spec.%s: not an RFC 3339 time" % k)
    return None


def lease_api(method, ns, name, data):
    """The Lease endpoints (under LOCK)."""
    gr = "leases.coordination.k8s.io"
    key = (ns, name)
    if method == "GET" and name:
        lease = LEASES.get(key)
        return (200, lease) if lease else status(404, "NotFound", '%s "%s" not found' % (gr, name))
    if method not in ("POST", "PUT") or bool(name) != (method == "PUT"):
        return status(405, "MethodNotAllowed", "the server does not allow this method on the "
                      "requested resource")
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        return status(400, "BadRequest", "the body is not a Lease object")
    md = data["metadata"]
    bad = lease_invalid(data)
    if bad:
        return bad
    if md.get("namespace", ns) != ns:
        return status(400, "BadRequest", "the namespace of the provided object does not match "
                      "the namespace sent on the request")
    if method == "POST":
        name = md.get("name")
        if not isinstance(name, str) or not PREFIX_RE.match(name) or len(name) > 253:
            return status(422, "Invalid", "metadata.name: Required value: name or generateName "
                          "is required")
        if md.get("resourceVersion"):
            return status(500, "InternalError", "resourceVersion should not be set on objects "
                          "to be created")
        if (ns, name) in LEASES:
            return status(409, "AlreadyExists", '%s "%s" already exists' % (gr, name))
        obj = copy.deepcopy(data)
        obj.update({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1"})
        obj["metadata"] = {"name": name, "namespace": ns, "uid": str(uuid.uuid4()),
                           "creationTimestamp": micro_now()[:19] + "Z",
                           "resourceVersion": next_rv()}
        obj.setdefault("spec", {})
        LEASES[(ns, name)] = obj
        return 201, obj
    if md.get("name") != name:
        return status(400, "BadRequest", "the name of the object (%s) does not match the name "
                      "on the URL (%s)" % (md.get("name"), name))
    old = LEASES.get(key)
    if not old:
        return status(404, "NotFound", '%s "%s" not found' % (gr, name))
    if not md.get("resourceVersion"):
        return status(422, "Invalid", "metadata.resourceVersion: Invalid value: 0x0: must be "
                      "specified for an update")
    if md["resourceVersion"] != old["metadata"]["resourceVersion"]:
        return status(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object '
                      "has been modified; please apply your changes to the latest version and "
                      "try again" % (gr, name))
    obj = copy.deepcopy(old)
    obj["spec"] = copy.deepcopy(data.get("spec") or {})
    obj["metadata"]["resourceVersion"] = next_rv()
    LEASES[key] = obj
    return 200, obj


TOKENREVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
API_AUDIENCES = ["https://kubernetes.default.svc"]


def token_review(data):
    """POST .../tokenreviews (LOCK held): as the API server's TokenReview
    authenticator answers, 201 whether or not the token is valid."""
    spec = data.get("spec") if isinstance(data, dict) else None
    # Like the API server's decoder: kind and apiVersion default to the
    # endpoint's; other ones are refused.
    if not isinstance(data, dict) or data.get("kind", "TokenReview") != "TokenReview" or \
            data.get("apiVersion", "authentication.k8s.io/v1") != "authentication.k8s.io/v1":
        return status(400, "BadRequest", "the body of the request is not a TokenReview")
    if not isinstance(spec, dict) or not isinstance(spec.get("token"), str) or not spec["token"]:
        return status(422, "Invalid", "TokenReview.authentication.k8s.io \"\" is invalid: spec.token: Required value")
    STATE["reviews"] += 1
    REVIEWED[spec["token"]] = REVIEWED.get(spec["token"], 0) + 1
    wanted = spec.get("audiences") or API_AUDIENCES
    review = {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
              "metadata": {"creationTimestamp": None}, "spec": spec}
    t = TOKENS.get(spec["token"])
    if t is None:
        review["status"] = {"user": {}, "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive]"}
        return 201, review
    if t.get("expired"):
        review["status"] = {"user": {}, "error": "[invalid bearer token, service account token has expired]"}
        return 201, review
    matched = [a for a in wanted if a in t.get("audiences", API_AUDIENCES)]
    if not matched:
        review["status"] = {"user": {}, "error": "[invalid bearer token, token audiences %s is invalid for the target audiences %s]" % (
            json.dumps(t.get("audiences", API_AUDIENCES)), json.dumps(wanted))}
        return 201, review
    user = t["username"]
    extra = {"authentication.kubernetes.io/pod-name": ["kima-agent-x1"],
             "authentication.kubernetes.io/pod-uid": ["0b8d8c3c-2a7e-4f1e-9a57-000000000001"],
             "authentication.kubernetes.io/credential-id": ["JTI=" + str(uuid.uuid5(uuid.NAMESPACE_OID, spec["token"]))]}
    if "nodes" in t:
        extra["authentication.kubernetes.io/node-name"] = t["nodes"]
    elif t.get("node") is not None:
        extra["authentication.kubernetes.io/node-name"] = [t["node"]]
        extra["authentication.kubernetes.io/node-uid"] = [str(uuid.uuid5(uuid.NAMESPACE_DNS, t["node"]))]
    ns = user.split(":")[2] if user.startswith("system:serviceaccount:") else None
    groups = ["system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"] if ns \
        else ["system:authenticated"]
    review["status"] = {"authenticated": True, "audiences": matched,
                        "user": {"username": user, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, user)),
                                 "groups": groups, "extra": extra}}
    return 201, review


def make_pod(spec):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": spec["name"], "namespace": spec["namespace"],
                     "uid": spec.get("uid") or str(uuid.uuid4()),
                     "labels": dict(spec.get("labels", {})), "annotations": {},
                     "resourceVersion": next_rv()},
        "spec": {"nodeName": spec.get("nodeName", "node-1"),
                 "containers": [{"name": "main", "image": spec.get("image", "example/app:1")}]},
        "status": {"phase": "Running",
                   "containerStatuses": spec.get("containerStatuses", [])},
    }


def manage(obj, manager, patch):
    """Record a write in metadata.managedFields as the API server does: the
    manager's Update entry names the labels and annotations it wrote."""
    md = obj["metadata"]
    pmd = patch.get("metadata") if isinstance(patch, dict) else None
    fields = {}
    for part in ("labels", "annotations"):
        keys = (pmd or {}).get(part)
        if isinstance(keys, dict) and keys:
            fields["f:" + part] = {"f:" + k: {} for k in keys}
    mf = [m for m in md.get("managedFields", []) if m.get("manager") != manager]
    mf.append({"manager": manager, "operation": "Update", "apiVersion": "v1",
               "time": micro_now()[:19] + "Z", "fieldsType": "FieldsV1",
               "fieldsV1": {"f:metadata": fields}})
    md["managedFields"] = mf


def eviction_api(ns, name, data):
    """POST .../pods/NAME/eviction (under LOCK)."""
    pod = PODS.get((ns, name))
    rec = {"namespace": ns, "name": name, "uid": None}
    EVICTIONS.append(rec)

    def answer(code, obj):
        rec["status"] = code
        return code, obj
    if not isinstance(data, dict) or data.get("kind") != "Eviction" or \
            data.get("apiVersion") not in ("policy/v1", "policy/v1beta1") or \
            (data.get("metadata") or {}).get("name") != name:
        return answer(*status(400, "BadRequest", "the body is not an Eviction of this pod"))
    if not pod:
        return answer(*status(404, "NotFound", 'pods "%s" not found' % name))
    uid = ((data.get("deleteOptions") or {}).get("preconditions") or {}).get("uid")
    rec["uid"] = uid
    if uid is not None and uid != pod["metadata"]["uid"]:
        return answer(*status(409, "Conflict", 'Operation cannot be fulfilled on Pod "%s": '
                              "Precondition failed: UID in precondition: %s, UID in object "
                              "meta: %s" % (name, uid, pod["metadata"]["uid"])))
    for key in ((ns, name), ("*", "*")):
        if PDB.get(key, 0) > 0:
            PDB[key] -= 1
            code, obj = status(429, "TooManyRequests", "Cannot evict pod as it would violate "
                               "the pod's disruption budget.")
            obj["details"] = {"causes": [{"reason": "DisruptionBudget",
                                          "message": "The disruption budget %s-pdb needs 1 "
                                          "healthy pods and has 1 currently" % name}]}
            return answer(code, obj)
    del PODS[(ns, name)]
    emit("DELETED", pod)
    return answer(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "code": 201})


TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def node_api(method, name, data, ct):
    """GET and PATCH /api/v1/nodes/NAME (under LOCK)."""
    node = NODES.get(name)
    if not node:
        return status(404, "NotFound", 'nodes "%s" not found' % name)
    if method == "GET":
        out = copy.deepcopy(node)
        race = NODE_RACES.pop(name, None)
        if race:  # another writer, right after this read
            node.setdefault("spec", {}).setdefault("taints", []).append(race)
            node["metadata"]["resourceVersion"] = next_rv()
        return 200, out
    if method != "PATCH":
        return status(405, "MethodNotAllowed", "the server does not allow this method on the "
                      "requested resource")
    if ct != "application/merge-patch+json":
        return status(415, "UnsupportedMediaType",
                      "the body of the request was in an unknown format")
    if not isinstance(data, dict):
        return status(400, "BadRequest", "the patch is not a JSON object")
    want_rv = (data.get("metadata") or {}).get("resourceVersion")
    if want_rv is not None and want_rv != node["metadata"]["resourceVersion"]:
        return status(409, "Conflict", 'Operation cannot be fulfilled on nodes "%s": the object '
                      "has been modified; please apply your changes to the latest version and "
                      "try again" % name)
    new = merge(copy.deepcopy(node), data)
    seen = set()
    for i, t in enumerate((new.get("spec") or {}).get("taints") or []):
        if not isinstance(t, dict) or not t.get("key") or not valid_label_key(t["key"]):
            return status(422, "Invalid", "spec.taints[%d].key: Invalid value" % i)
        if t.get("effect") not in TAINT_EFFECTS:
            return status(422, "Invalid", 'spec.taints[%d].effect: Unsupported value: "%s"'
                          % (i, t.get("effect")))
        if (t["key"], t["effect"]) in seen:
            return status(422, "Invalid", "spec.taints[%d]: Duplicate value: %s:%s"
                          % (i, t["key"], t["effect"]))
        seen.add((t["key"], t["effect"]))
    if new["metadata"].get("name") != name:
        return status(422, "Invalid", "metadata.name is immutable")
    new["metadata"]["resourceVersion"] = next_rv()
    NODES[name] = new
    return 200, new


def fake_tamper(data):
    """Another user patches a pod's labels or annotations (under LOCK)."""
    key = (data.get("namespace"), data.get("name"))
    pod = PODS.get(key)
    if not pod:
        return status(404, "NotFound", "no such pod")
    patch = {"metadata": {k: data[k] for k in ("labels", "annotations") if k in data}}
    new = merge(copy.deepcopy(pod), patch)
    manage(new, data.get("manager", "kubectl-label"), patch)
    new["metadata"]["resourceVersion"] = next_rv()
    PODS[key] = new
    emit("MODIFIED", new)
    return 200, new


def fake_node(data):
    """Add or replace a Node, or arm a racing writer (under LOCK)."""
    name = data.get("name")
    if not isinstance(name, str) or not PREFIX_RE.match(name):
        return status(400, "BadRequest", "a node needs a name")
    if "race_taint" in data:
        if name not in NODES:
            return status(404, "NotFound", "no such node")
        NODE_RACES[name] = data["race_taint"]
        return 200, NODES[name]
    NODES[name] = {"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": name, "uid": str(uuid.uuid4()),
                                "resourceVersion": next_rv(), "labels": {}},
                   "spec": {"taints": list(data.get("taints", []))} if data.get("taints")
                   else {}}
    return 201, NODES[name]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 3 * 1024 * 1024:
            return None
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def authenticated(self, write):
        auth = self.headers.get("Authorization", "")
        peer = None
        try:
            peer = self.connection.getpeercert()
        except (AttributeError, ValueError):
            pass
        if auth == "Bearer " + ARGS.token or peer:
            return None
        if ARGS.readonly_token and auth == "Bearer " + ARGS.readonly_token:
            return status(403, "Forbidden", "readonly cannot write") if write else None
        return status(401, "Unauthorized", "Unauthorized")

    def control(self, method, path):
        data = self.body() if method == "POST" else None
        with LOCK:
            if method == "GET" and path == "/_fake/state":
                return 200, {"pods": list(PODS.values()), "events": EVENTS, "requests": REQUESTS,
                             "leases": list(LEASES.values()),
                             "nodes": list(NODES.values()), "evictions": EVICTIONS,
                             "lists": STATE["lists"], "pages": STATE["pages"],
                             "watches": STATE["watches"], "reviews": STATE["reviews"], "reviewed": REVIEWED,
                             "resourceVersion": str(STATE["rv"]),
                             "sent_rv": str(STATE["sent_rv"])}
            if method == "POST" and path == "/_fake/pods" and isinstance(data, dict):
                pod = make_pod(data)
                put_pod(pod)
                return 201, pod
            if method == "POST" and path == "/_fake/watch" and isinstance(data, dict):
                if "hold" in data:
                    STATE["hold"] = bool(data["hold"])
                if data.get("close"):
                    STATE["closed"] += 1
                if data.get("compact"):
                    HISTORY.clear()
                    STATE["floor"] = STATE["rv"]
                if "history" in data:
                    STATE["history"] = int(data["history"])
                if "bookmark_seconds" in data:
                    STATE["bookmark_s"] = float(data["bookmark_seconds"])
                if "end_at_once" in data:
                    STATE["end_at_once"] = bool(data["end_at_once"])
                if "expire_continue" in data:
                    STATE["expire_continue"] = int(data["expire_continue"])
                if "garbage" in data:
                    STATE["garbage"] = str(data["garbage"]) * int(data.get("repeat", 1))
                COND.notify_all()
                return 200, {}
            if method == "POST" and path == "/_fake/fail" and isinstance(data, dict):
                if data.get("clear"):
                    FAILS.clear()
                    return 200, {}
                FAILS.append({"method": data.get("method"), "status": int(data["status"]),
                              "count": int(data.get("count", 1)), "path": data.get("path")})
                return 200, {}
            if method == "POST" and path == "/_fake/lease" and isinstance(data, dict):
                key = (data.get("namespace", "default"), data.get("name"))
                if data.get("delete"):
                    return (200, LEASES.pop(key)) if key in LEASES else \
                        status(404, "NotFound", "no such lease")
                if data.get("expire"):
                    if key not in LEASES:
                        return status(404, "NotFound", "no such lease")
                    LEASES[key].setdefault("spec", {})["renewTime"] = micro_now(-3600)
                    LEASES[key]["metadata"]["resourceVersion"] = next_rv()
                    return 200, LEASES[key]
                obj = copy.deepcopy(data["object"]) if "object" in data else {
                    "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
                    "metadata": {"name": key[1], "namespace": key[0]},
                    "spec": data.get("spec", {})}
                if isinstance(obj.get("metadata"), dict) and "object" not in data:
                    obj["metadata"]["resourceVersion"] = next_rv()
                LEASES[key] = obj
                return 200, obj
            if method == "POST" and path == "/_fake/tokens" and isinstance(data, dict):
                if data.get("clear"):
                    TOKENS.clear()
                    return 200, {}
                TOKENS[str(data["token"])] = {k: data[k] for k in
                                              ("username", "audiences", "node", "nodes", "expired")
                                              if k in data}
                return 200, {}
            if method == "POST" and path == "/_fake/api-token" and isinstance(data, dict):
                ARGS.token = str(data["token"])  # the old token is 401 from now on
                return 200, {}
            if method == "POST" and path == "/_fake/tamper" and isinstance(data, dict):
                return fake_tamper(data)
            if method == "POST" and path == "/_fake/nodes" and isinstance(data, dict):
                return fake_node(data)
            if method == "POST" and path == "/_fake/pdb" and isinstance(data, dict):
                if data.get("clear"):
                    PDB.clear()
                else:
                    PDB[(data.get("namespace", "*"), data.get("name", "*"))] = \
                        int(data.get("count", 1))
                return 200, {}
            if method == "POST" and path == "/_fake/down" and isinstance(data, dict):
                STATE["down_until"] = time.time() + float(data["seconds"])
                return 200, {}
            if method == "POST" and path == "/_fake/delete" and isinstance(data, dict):
                pod = PODS.pop((data.get("namespace"), data.get("name")), None)
                if pod:
                    emit("DELETED", pod)
                return (200, pod) if pod else status(404, "NotFound", "no such pod")
            if method == "POST" and path == "/_fake/slow" and isinstance(data, dict):
                STATE["slow_until"] = time.time() + float(data["seconds"])
                STATE["slow_delay"] = float(data["delay"])
                return 200, {}
        return status(404, "NotFound", "no such control")

    def api(self, method, url):
        path = url.path.rstrip("/")
        write = method in ("PATCH", "POST", "PUT", "DELETE")
        with LOCK:
            delay = STATE["slow_delay"] if time.time() < STATE["slow_until"] else 0
        if delay:
            time.sleep(delay)  # outside the lock: other requests are slow too, not queued
        with LOCK:
            self.rec = {"method": method, "path": path,
                        "content_type": self.headers.get("Content-Type", ""),
                        "agent": self.headers.get("User-Agent", ""), "time": time.time()}
            REQUESTS.append(self.rec)
            if time.time() < STATE["down_until"]:
                return status(503, "ServiceUnavailable", "the fake API server is down")
            for f in FAILS:
                if f["count"] > 0 and (not f["method"] or f["method"] == method) and \
                        (not f.get("path") or f["path"] in path):
                    f["count"] -= 1
                    return status(f["status"], "Injected", "injected failure %d" % f["status"])
        denied = self.authenticated(write)
        if denied:
            return denied
        parts = path.split("/")
        data = self.body() if write else None
        with LOCK:
            if path == TOKENREVIEW_PATH:
                if method != "POST":
                    return status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
                if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                    return status(415, "UnsupportedMediaType",
                                  "the body of the request was in an unknown format")
                return token_review(data)
            m = LEASE_PATH_RE.match(path)
            if m:
                ct = self.headers.get("Content-Type", "").split(";")[0].strip()
                if write and ct != "application/json":
                    return status(415, "UnsupportedMediaType",
                                  "the body of the request was in an unknown format")
                return lease_api(method, m.group(1), m.group(3), data)
            if method == "GET" and path == "/api/v1/pods":
                q = parse_qs(url.query)
                if q.get("watch", [""])[0] in ("1", "true"):
                    return "watch", q
                sel = q.get("fieldSelector", [""])[0]
                items = list(PODS.values())
                if sel:
                    m = re.match(r"^spec\.nodeName=(.*)$", sel)
                    if not m:
                        return status(400, "BadRequest", "field label not supported: " + sel)
                    items = [p for p in items if p["spec"]["nodeName"] == m.group(1)]
                return list_pods(items, q)
            if len(parts) == 5 and parts[1:4] == ["api", "v1", "nodes"]:
                return node_api(method, parts[4], data,
                                self.headers.get("Content-Type", "").split(";")[0].strip())
            if len(parts) == 8 and parts[1:4] == ["api", "v1", "namespaces"] and \
                    parts[5] == "pods" and parts[7] == "eviction" and method == "POST":
                return eviction_api(parts[4], parts[6], data)
            if len(parts) >= 6 and parts[1:4] == ["api", "v1", "namespaces"]:
                ns = parts[4]
                if parts[5] == "pods" and len(parts) == 6 and method == "GET":
                    return 200, {"kind": "PodList", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": str(STATE["rv"])},
                                 "items": [p for (n, _), p in PODS.items() if n == ns]}
                if parts[5] == "pods" and len(parts) == 7:
                    pod = PODS.get((ns, parts[6]))
                    if not pod:
                        return status(404, "NotFound", 'pods "%s" not found' % parts[6])
                    if method == "GET":
                        return 200, pod
                    if method == "PATCH":
                        ct = self.headers.get("Content-Type", "").split(";")[0].strip()
                        if ct not in ("application/merge-patch+json",
                                      "application/strategic-merge-patch+json"):
                            return status(415, "UnsupportedMediaType",
                                          "the body of the request was in an unknown format")
                        if not isinstance(data, dict):
                            return status(400, "BadRequest", "the patch is not a JSON object")
                        new = merge(copy.deepcopy(pod), data)
                        md = new.get("metadata", {})
                        for k, v in (md.get("labels") or {}).items():
                            if not valid_label_key(k) or not isinstance(v, str) or \
                                    len(v) > 63 or not NAME_RE.match(v):
                                return status(422, "Invalid", "invalid label %s=%r" % (k, v))
                        for k in (md.get("annotations") or {}):
                            if not valid_label_key(k):
                                return status(422, "Invalid", "invalid annotation key " + k)
                        if md.get("uid") != pod["metadata"]["uid"]:
                            # A UID in the patch is a precondition: the API
                            # server refuses it for another pod (of the same
                            # name) with 409 Conflict.
                            return status(409, "Conflict",
                                          'Operation cannot be fulfilled on pods "%s": '
                                          "Precondition failed: UID in precondition: %s, "
                                          "UID in object meta: %s"
                                          % (parts[6], md.get("uid"), pod["metadata"]["uid"]))
                        if md.get("name") != pod["metadata"]["name"]:
                            return status(422, "Invalid", "metadata.name is immutable")
                        md["resourceVersion"] = next_rv()
                        manage(new, (self.headers.get("User-Agent") or "unknown").split("/")[0],
                               data)
                        PODS[(ns, parts[6])] = new
                        emit("MODIFIED", new)
                        return 200, new
                if parts[5] == "events" and len(parts) == 6 and method == "POST":
                    if not isinstance(data, dict) or data.get("kind") != "Event" or \
                            not isinstance(data.get("involvedObject"), dict) or \
                            data.get("metadata", {}).get("namespace", ns) != ns:
                        return status(400, "BadRequest", "not an Event of this namespace")
                    ev = copy.deepcopy(data)
                    md = ev.setdefault("metadata", {})
                    md["name"] = md.get("name") or md.get("generateName", "event.") + \
                        uuid.uuid4().hex[:5]
                    md["namespace"] = ns
                    md["resourceVersion"] = next_rv()
                    EVENTS.append(ev)
                    return 201, ev
        return status(404, "NotFound", "the server could not find the requested resource")

    def chunk(self, line):
        data = line.encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, q):
        """Stream the events after the requested resourceVersion."""
        rv_s = q.get("resourceVersion", [""])[0]
        bookmarks = q.get("allowWatchBookmarks", [""])[0] in ("1", "true")
        try:
            rv = int(rv_s) if rv_s not in ("", "0") else None
            timeout = float(q.get("timeoutSeconds", ["1800"])[0])
        except ValueError:
            self.send(*status(400, "BadRequest", "invalid resourceVersion or timeoutSeconds"))
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        end = time.time() + timeout
        with LOCK:
            STATE["watches"] += 1
            closed = STATE["closed"]
            if rv is None:  # every pod first, as ADDED
                out = [json.dumps({"type": "ADDED", "object": p}) for p in PODS.values()]
                rv = STATE["rv"]
            elif rv < STATE["floor"] and rv != STATE["rv"]:
                out = [json.dumps({"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "too old resource version: %d (%d)" % (rv, STATE["floor"]),
                    "reason": "Expired", "code": 410}})]
                end = 0
            else:
                out = []
            if STATE["end_at_once"]:
                end = 0  # a broken server or proxy: 200, then the end at once
        next_bookmark = time.time() + STATE["bookmark_s"]
        try:
            while True:
                for line in out:
                    self.chunk(line)
                out = []
                now = time.time()
                if now >= end:
                    break
                with LOCK:
                    if STATE["closed"] != closed:
                        break
                    if not STATE["hold"]:
                        for erv, kind, obj in HISTORY:
                            if erv > rv:
                                line = json.dumps({"type": kind, "object": obj})
                                if STATE["garbage"] is not None:
                                    line, STATE["garbage"] = STATE["garbage"], None
                                out.append(line)
                                rv = erv
                                STATE["sent_rv"] = max(STATE["sent_rv"], erv)
                        if not out and bookmarks and now >= next_bookmark:
                            out.append(json.dumps({"type": "BOOKMARK", "object": {
                                "kind": "Pod", "apiVersion": "v1",
                                "metadata": {"resourceVersion": str(STATE["rv"])}}}))
                            rv = STATE["rv"]
                            next_bookmark = now + STATE["bookmark_s"]
                    if not out:
                        COND.wait(min(0.2, max(end - now, 0.01)))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True

    def handle_method(self, method):
        url = urlparse(self.path)
        if url.path.startswith("/_fake/"):
            code, obj = self.control(method, url.path)
        else:
            self.rec = None
            code, obj = self.api(method, url)
            if self.rec is not None:
                with LOCK:
                    self.rec["status"] = code if code != "watch" else 200
        if code == "watch":
            self.watch(obj)
            return
        self.send(code, obj)

    def do_GET(self):
        self.handle_method("GET")

    def do_POST(self):
        self.handle_method("POST")

    def do_PATCH(self):
        self.handle_method("PATCH")

    def do_PUT(self):
        self.handle_method("PUT")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca")
    ap.add_argument("--token", required=True)
    ap.add_argument("--readonly-token")
    ap.add_argument("--pods")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--down-seconds", type=float, default=0.0)
    ap.add_argument("--down-requests", type=int, default=0)
    ap.add_argument("--watch-history", type=int, default=1000)
    ap.add_argument("--bookmark-seconds", type=float, default=1.0)
    ARGS = ap.parse_args()
    STATE["history"] = ARGS.watch_history
    STATE["bookmark_s"] = ARGS.bookmark_seconds
    STATE["down_until"] = time.time() + ARGS.down_seconds
    if ARGS.down_requests > 0:
        FAILS.append({"status": 503, "method": "", "count": ARGS.down_requests})
    if ARGS.pods:
        for item in json.load(open(ARGS.pods)).get("items", []):
            md = item["metadata"]
            PODS[(md["namespace"], md["name"])] = make_pod({
                "uid": md["uid"], "namespace": md["namespace"], "name": md["name"],
                "labels": md.get("labels", {}), "nodeName": item["spec"]["nodeName"],
                "containerStatuses": item.get("status", {}).get("containerStatuses", [])})
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    if ARGS.client_ca:
        ctx.load_verify_locations(ARGS.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    STATE["floor"] = STATE["rv"]
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(ARGS.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(ARGS.port_file + ".tmp", ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
