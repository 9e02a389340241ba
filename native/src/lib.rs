//! The shipper's fast path for the common record, compiled: the steps shipper/fast.py inlines
//! (expanding `log.level` and `ecs.version`, the timestamp and level checks, the service, the
//! ingest stamp, the health state, the stream) done on the record's canonical bytes, copying every
//! value the transform leaves alone. A record that is not in every step's common case, or whose
//! bytes are not orjson's canonical form (see json.rs), is given back (`None`) and takes the Python
//! path, so the documents are the same whichever path made them (tests/shipper/test_fast.py).
//!
//! The constants (levels, ECS version, agent type, the shipper's own provider) come from the
//! Python contract module at construction: this file restates no rule's values.

mod json;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use json::{int_value, json_str, plain_str, write_str, Member, Scanner};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyString, PyTuple};

/// `@timestamp`'s wire form, `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z` (collector.contract.timefmt.ISO_MS)
/// in ASCII digits (Python's `\d` takes other digits too: those take the Python path).
fn iso_ms(ts: &[u8]) -> bool {
    const SHAPE: &[u8; 24] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    ts.len() == 24 && ts.iter().zip(SHAPE.iter()).all(|(&c, &s)| if s == b'd' { c.is_ascii_digit() } else { c == s })
}

/// FNV-1a: the keys are a topic and a service name, hashed once per record.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}


/// What the batch knows of one (topic, service, metric kind): the stream the Python path routed
/// it to (shipper/fast.py's `routes`), and the service's health state.
struct Stream {
    name: Py<PyString>,
    stream: Py<PyAny>,
    type_: Py<PyAny>,
    /// The action line up to the id (shipper.bulk.action_head).
    head: Vec<u8>,
    data_stream: Vec<u8>,
    dataset: Vec<u8>,
    /// The health state as JSON (None: no state), while `epoch` is the batch's.
    state: Option<Vec<u8>>,
    epoch: u64,
}

/// One batch's fast path: the values every record of the batch shares, and its caches, which
/// follow the Python path's (each stream once the Python path routed a record to it, each
/// service's health state until the caller says the states changed). At most one entry per
/// (topic, service, metric kind) the Python path routed in this batch: bounded by the batch.
#[pyclass(module = "elk_native")]
struct Batch {
    latest: Vec<u8>,
    ingested: Vec<u8>,
    ecs_version: Vec<u8>,
    ecs: Vec<u8>,
    agent: Vec<u8>,
    namespace: String,
    own_writer: String,
    short_id: usize,
    levels: Vec<Py<PyString>>,
    level_names: Vec<String>,
    states: Py<PyDict>,
    state_of: Py<PyAny>,
    routes: Py<PyDict>,
    action_head: Py<PyAny>,
    streams: HashMap<Vec<u8>, Stream, BuildHasherDefault<Fnv>>,
    epoch: u64,
    scanner: Scanner,
    inner: Scanner,
    key: Vec<u8>,
    doc: Vec<u8>,
    // the partition run: its topic and the document ids' parts around the offset
    topic: Option<Py<PyString>>,
    topic_key: Vec<u8>,
    id_base: String,
    id_tail: String,
}

const K_LOG: &[u8] = b"\"log\"";
const K_LOG_LEVEL: &[u8] = b"\"log.level\"";
const K_LEVEL: &[u8] = b"\"level\"";
const K_ECS: &[u8] = b"\"ecs\"";
const K_ECS_VERSION: &[u8] = b"\"ecs.version\"";
const K_VERSION: &[u8] = b"\"version\"";
const K_TIMESTAMP: &[u8] = b"\"@timestamp\"";
const K_MESSAGE: &[u8] = b"\"message\"";
const K_SERVICE: &[u8] = b"\"service\"";
const K_NAME: &[u8] = b"\"name\"";
const K_NODE: &[u8] = b"\"node\"";
const K_EVENT: &[u8] = b"\"event\"";
const K_PROVIDER: &[u8] = b"\"provider\"";
const K_INGESTED: &[u8] = b"\"ingested\"";
const K_AGENT: &[u8] = b"\"agent\"";
const K_HEALTH: &[u8] = b"\"health\"";
const K_STATE: &[u8] = b"\"state\"";
const K_VALUE: &[u8] = b"\"value\"";
const K_KIND: &[u8] = b"\"kind\"";
const K_ID: &[u8] = b"\"id\"";
const K_DATA_STREAM: &[u8] = b"\"data_stream\"";
const K_DATASET: &[u8] = b"\"dataset\"";
const K_HTTP: &[u8] = b"\"http\"";
const K_RESPONSE: &[u8] = b"\"response\"";
const K_STATUS_CODE: &[u8] = b"\"status_code\"";

/// Where the top-level keys the transform reads or changes are (indexes into the scan's `top`).
#[derive(Default)]
struct Places {
    ts: Option<usize>,
    message: Option<usize>,
    log_level: Option<usize>,
    ecs_version: Option<usize>,
    log: Option<usize>,
    ecs: Option<usize>,
    service: Option<usize>,
    event: Option<usize>,
    http: Option<usize>,
    health: Option<usize>,
    agent: Option<usize>,
    data_stream: Option<usize>,
}

/// What one record gives besides its document.
struct Found {
    ts: Range<usize>,
    level: Option<usize>,
    code: Option<i128>,
}

/// The document as it is written: members copied from the record in runs, the changed ones between.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    raw: &'a [u8],
    first: bool,
    run: Option<Range<usize>>,
}

impl<'a> Writer<'a> {
    fn open(out: &'a mut Vec<u8>, raw: &'a [u8]) -> Self {
        out.push(b'{');
        Writer { out, raw, first: true, run: None }
    }

    fn sep(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// A member of the record, unchanged: one run with its neighbours (canonical members are one comma apart).
    fn copy(&mut self, m: &Member) {
        self.run = Some(match self.run.take() {
            Some(r) if r.end + 1 == m.key.start => r.start..m.value.end,
            Some(r) => {
                self.flush_range(r);
                m.key.start..m.value.end
            }
            None => m.key.start..m.value.end,
        });
    }

    fn flush_range(&mut self, r: Range<usize>) {
        self.sep();
        self.out.extend_from_slice(&self.raw[r]);
    }

    fn flush(&mut self) {
        if let Some(r) = self.run.take() {
            self.flush_range(r);
        }
    }

    /// The key of a changed member; its value follows.
    fn key(&mut self, key: &[u8]) {
        self.flush();
        self.sep();
        self.out.extend_from_slice(key);
        self.out.push(b':');
    }

    fn member(&mut self, key: &[u8], value: &[u8]) {
        self.key(key);
        self.out.extend_from_slice(value);
    }

    fn close(mut self) {
        self.flush();
        self.out.push(b'}');
    }
}

/// An object of the record with `lead` first, each of `sets` in place of its key or after the
/// members (Python's `d[key] = value`, in that order), and the rest copied.
fn changed_object(out: &mut Vec<u8>, raw: &[u8], members: &[Member], lead: Option<(&[u8], &[u8])>, sets: &[(&[u8], &[u8])]) {
    let mut w = Writer::open(out, raw);
    if let Some((k, v)) = lead {
        w.member(k, v);
    }
    let mut found = [false; 4];
    for m in members {
        let key = &raw[m.key.clone()];
        match sets.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                found[i] = true;
                w.member(key, sets[i].1);
            }
            None => w.copy(m),
        }
    }
    for (i, (k, v)) in sets.iter().enumerate() {
        if !found[i] {
            w.member(k, v);
        }
    }
    w.close();
}

fn field<'r>(raw: &'r [u8], sub: &[Member], m: &Member, key: &[u8]) -> Option<&'r [u8]> {
    sub[m.members.clone()].iter().find(|s| &raw[s.key.clone()] == key).map(|s| &raw[s.value.clone()])
}

#[pymethods]
impl Batch {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        latest: &str,
        ingested: &str,
        ecs_version: &str,
        agent_type: &str,
        host_name: &str,
        namespace: &str,
        own_writer: &str,
        short_id: usize,
        levels: Vec<Bound<'_, PyString>>,
        states: Bound<'_, PyDict>,
        state_of: Bound<'_, PyAny>,
        routes: Bound<'_, PyDict>,
        action_head: Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let mut agent = b"{\"type\":".to_vec();
        write_str(&mut agent, agent_type);
        agent.extend_from_slice(b",\"name\":");
        write_str(&mut agent, host_name);
        agent.push(b'}');
        let ecs_version = json_str(ecs_version);
        let mut ecs = b"{\"version\":".to_vec();
        ecs.extend_from_slice(&ecs_version);
        ecs.push(b'}');
        let mut level_names = Vec::new();
        for l in &levels {
            level_names.push(l.to_str()?.to_owned());
        }
        Ok(Batch {
            latest: latest.as_bytes().to_vec(),
            ingested: json_str(ingested),
            ecs_version,
            ecs,
            agent,
            namespace: namespace.to_owned(),
            own_writer: own_writer.to_owned(),
            short_id,
            levels: levels.into_iter().map(|l| l.unbind()).collect(),
            level_names,
            states: states.unbind(),
            state_of: state_of.unbind(),
            routes: routes.unbind(),
            action_head: action_head.unbind(),
            streams: HashMap::default(),
            epoch: 0,
            scanner: Scanner::default(),
            inner: Scanner::default(),
            key: Vec::new(),
            doc: Vec::new(),
            topic: None,
            topic_key: Vec::new(),
            id_base: String::new(),
            id_tail: String::new(),
        })
    }

    /// How many streams the batch knows (at most one per entry of the Python path's `routes`).
    fn __len__(&self) -> usize {
        self.streams.len()
    }

    /// The states dict was cleared (a probe result was observed): ask it again.
    fn states_changed(&mut self) {
        self.epoch += 1;
    }

    /// A partition's run of records starts: its topic, and the document ids' parts around the offset.
    fn run(&mut self, topic: Bound<'_, PyString>, id_base: String, id_tail: String) -> PyResult<()> {
        self.topic_key.clear();
        self.topic_key.extend_from_slice(topic.to_str()?.as_bytes());
        self.topic_key.push(0);
        self.topic = Some(topic.unbind());
        self.id_base = id_base;
        self.id_tail = id_tail;
        Ok(())
    }

    /// The record's bulk lines (action and document) appended to `arena`, and
    /// `(id, service name, stream, data_stream.type, @timestamp, log.level, status code >= 500,
    /// line start, document start, document end)`; or None when the record is not the common
    /// one (the Python path then does it, and nothing was appended).
    fn transform<'py>(
        &mut self,
        py: Python<'py>,
        raw: &[u8],
        offset: i64,
        arena: &Bound<'py, PyByteArray>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(topic) = self.topic.as_ref().map(|t| t.clone_ref(py)) else {
            return Ok(None);
        };
        let mut doc = std::mem::take(&mut self.doc);
        doc.clear();
        // a bug of ours here must not stop the batch: a panic gives the record back to the Python path
        // (anything it appended to the arena is between lines, and no line refers to it)
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match self.common(py, raw, topic.bind(py), &mut doc)? {
                Some(found) => self.lines(py, raw, offset, arena, &doc, found),
                None => Ok(None),
            }
        }))
        .unwrap_or(Ok(None));
        self.doc = doc;
        result
    }
}

impl Batch {
    /// The bulk lines into the arena, and what `transform` gives back.
    fn lines<'py>(
        &self,
        py: Python<'py>,
        raw: &[u8],
        offset: i64,
        arena: &Bound<'py, PyByteArray>,
        doc: &[u8],
        found: Found,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let mut doc_id = String::with_capacity(self.id_base.len() + 24 + self.id_tail.len());
        doc_id.push_str(&self.id_base);
        doc_id.push_str(&offset.to_string());
        doc_id.push_str(&self.id_tail);
        if doc_id.chars().count() > self.short_id {
            return Ok(None); // a long id is bounded (shipper.ids.bounded_id): the Python path
        }
        let entry = &self.streams[&self.key];
        let line = arena.len();
        let mut id_json = Vec::with_capacity(doc_id.len() + 2);
        write_str(&mut id_json, &doc_id);
        let start = line + entry.head.len() + id_json.len() + 3;
        let end = start + doc.len();
        arena.resize(end + 1)?;
        // SAFETY: the bytearray is ours alone while the GIL is held and nothing runs Python code in between
        let bytes = unsafe { arena.as_bytes_mut() };
        let mut at = line;
        for part in [&entry.head[..], &id_json, b"}}\n", doc, b"\n"] {
            bytes[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        let level = match found.level {
            Some(i) => self.levels[i].bind(py).clone().into_any(),
            None => py.None().into_bound(py),
        };
        let code = match found.code {
            Some(v) => v.into_pyobject(py)?.into_any(),
            None => py.None().into_bound(py),
        };
        let ts = std::str::from_utf8(&raw[found.ts]).unwrap_or_default();
        let items: [Bound<'py, PyAny>; 10] = [
            PyString::new(py, &doc_id).into_any(),
            entry.name.bind(py).clone().into_any(),
            entry.stream.bind(py).clone(),
            entry.type_.bind(py).clone(),
            PyString::new(py, ts).into_any(),
            level,
            code,
            line.into_pyobject(py)?.into_any(),
            start.into_pyobject(py)?.into_any(),
            end.into_pyobject(py)?.into_any(),
        ];
        Ok(Some(PyTuple::new(py, items)?))
    }

    /// The record's document into `doc`, when it is the common record. Ok(None): it is not;
    /// Err: Python failed (a state_of or action_head that raised).
    fn common(&mut self, py: Python<'_>, raw: &[u8], topic: &Bound<'_, PyString>, doc: &mut Vec<u8>) -> PyResult<Option<Found>> {
        macro_rules! need {
            ($e:expr) => {
                match $e {
                    Some(v) => v,
                    None => return Ok(None),
                }
            };
        }
        macro_rules! check {
            ($e:expr) => {
                if !$e {
                    return Ok(None);
                }
            };
        }
        check!(self.scanner.scan(raw) && !self.scanner.nested_dot);
        let sc = &self.scanner;
        let (top, sub) = (&sc.top, &sc.sub);
        let mut at = Places::default();
        for (i, m) in top.iter().enumerate() {
            let slot = match &raw[m.key.clone()] {
                K_TIMESTAMP => &mut at.ts,
                K_MESSAGE => &mut at.message,
                K_LOG_LEVEL => &mut at.log_level,
                K_ECS_VERSION => &mut at.ecs_version,
                K_LOG => &mut at.log,
                K_ECS => &mut at.ecs,
                K_SERVICE => &mut at.service,
                K_EVENT => &mut at.event,
                K_HTTP => &mut at.http,
                K_HEALTH => &mut at.health,
                K_AGENT => &mut at.agent,
                K_DATA_STREAM => &mut at.data_stream,
                key => {
                    check!(!key.contains(&b'.')); // other dotted keys: expand_keys decides
                    continue;
                }
            };
            *slot = Some(i);
        }
        let is_obj = |i: usize| raw[top[i].value.start] == b'{';

        // resolve_service: a named service object whose node is no text (no headers: the caller's check)
        let svc = &top[need!(at.service)];
        check!(raw[svc.value.start] == b'{');
        let name = need!(plain_str(need!(field(raw, sub, svc, K_NAME))));
        check!(!name.is_empty());
        if let Some(node) = field(raw, sub, svc, K_NODE) {
            check!(node[0] != b'"');
        }
        // stamp_ingest: an event object with no provider, or a text one that is not the shipper's
        let ev = &top[need!(at.event)];
        check!(raw[ev.value.start] == b'{');
        if let Some(p) = field(raw, sub, ev, K_PROVIDER) {
            if p != b"null" {
                check!(need!(plain_str(p)) != self.own_writer);
            }
        }
        let metric = match field(raw, sub, ev, K_KIND) {
            Some(v) if v[0] == b'"' => need!(plain_str(v)) == "metric",
            _ => false,
        };
        if let Some(v) = field(raw, sub, ev, K_ID) {
            check!(!(v[0] == b'"' && v.len() > 2)); // its own id: record_id decides
        }
        // normalize_timestamp: in the wire form and not in the future
        let ts_m = &top[need!(at.ts)];
        let ts = need!(plain_str(&raw[ts_m.value.clone()]));
        check!(iso_ms(ts.as_bytes()) && ts.as_bytes() <= self.latest.as_slice());
        check!(at.message.is_some());
        // expand_keys: `log.level` and `ecs.version` into their objects (none there, or one without that key)
        if at.log_level.is_some() {
            if let Some(i) = at.log {
                check!(is_obj(i) && field(raw, sub, &top[i], K_LEVEL).is_none());
            }
        }
        if at.ecs_version.is_some() {
            if let Some(i) = at.ecs {
                check!(is_obj(i) && field(raw, sub, &top[i], K_VERSION).is_none());
            }
        }
        // normalize_level: a canonical level (or none) in `log`
        let level_value = match at.log_level {
            Some(i) => Some(&raw[top[i].value.clone()]),
            None => {
                let i = need!(at.log);
                check!(is_obj(i));
                field(raw, sub, &top[i], K_LEVEL)
            }
        };
        let level = match level_value {
            None | Some(b"null") => None,
            Some(v) => {
                let text = need!(plain_str(v));
                Some(need!(self.level_names.iter().position(|l| l == text)))
            }
        };
        // the monitor's error signal: a status code of 500 or more
        let mut code = None;
        if let Some(http) = at.http.filter(|&i| is_obj(i)) {
            if let Some(resp) = field(raw, sub, &top[http], K_RESPONSE).filter(|r| r[0] == b'{') {
                let inner = &mut self.inner;
                check!(inner.scan(resp));
                if let Some(sc) = inner.top.iter().find(|m| &resp[m.key.clone()] == K_STATUS_CODE) {
                    if let Some(v) = int_value(&resp[sc.value.clone()]) {
                        if v >= 500 {
                            code = Some(v);
                        }
                    }
                }
            }
        }

        // The stream of this (topic, service, metric kind), known to the batch once the Python path
        // routed a record to it; the service's health state with it.
        self.key.clear();
        self.key.extend_from_slice(&self.topic_key);
        self.key.extend_from_slice(name.as_bytes());
        self.key.push(metric as u8);
        if !self.streams.contains_key(&self.key) {
            let pyname = PyString::new(py, name);
            let key = PyTuple::new(py, [topic.clone().into_any(), pyname.clone().into_any(), PyBool::new(py, metric).to_owned().into_any()])?;
            let route = need!(self.routes.bind(py).get_item(&key)?);
            let route = need!(route.cast_into::<PyTuple>().ok());
            check!(route.len() == 3);
            let stream = route.get_item(0)?;
            let type_ = route.get_item(1)?;
            let head = self.action_head.bind(py).call1((&stream,))?;
            let head = need!(head.cast::<PyBytes>().ok()).as_bytes().to_vec();
            let mut data_stream = b"{\"type\":".to_vec();
            write_str(&mut data_stream, need!(type_.cast::<PyString>().ok()).to_str()?);
            data_stream.extend_from_slice(b",\"dataset\":");
            let dataset = json_str(need!(route.get_item(2)?.cast::<PyString>().ok()).to_str()?);
            data_stream.extend_from_slice(&dataset);
            data_stream.extend_from_slice(b",\"namespace\":");
            write_str(&mut data_stream, &self.namespace);
            data_stream.push(b'}');
            let entry = Stream {
                name: pyname.unbind(),
                stream: stream.unbind(),
                type_: type_.unbind(),
                head,
                data_stream,
                dataset,
                state: None,
                epoch: u64::MAX,
            };
            self.streams.insert(self.key.clone(), entry);
        }
        let epoch = self.epoch;
        let entry = self.streams.get_mut(&self.key).expect("inserted above");
        if entry.epoch != epoch {
            let states = self.states.bind(py);
            let pyname = entry.name.bind(py);
            let state = match states.get_item(pyname)? {
                Some(s) => s,
                None => {
                    let s = self.state_of.bind(py).call1((pyname,))?;
                    states.set_item(pyname, &s)?;
                    s
                }
            };
            entry.state = if state.is_none() { None } else { Some(json_str(need!(state.cast::<PyString>().ok()).to_str()?)) };
            entry.epoch = epoch;
        }
        let entry = &self.streams[&self.key];
        let sc = &self.scanner;
        let (top, sub) = (&sc.top, &sc.sub);

        // The document. Python's expand_keys moves the dotted keys in place when the raw scan can
        // count them (shipper/dotted.py: no backslash in the record): each into its object, or a new
        // object at the end. Otherwise it rebuilds the record, where each object takes the place of
        // the first of its two keys, the leaf its order among them.
        let rebuilt = sc.escaped;
        let groups = [(at.log_level, at.log, K_LOG, K_LEVEL), (at.ecs_version, at.ecs, K_ECS, K_VERSION)];
        let mut w = Writer::open(doc, raw);
        for (i, m) in top.iter().enumerate() {
            let here = Some(i);
            if let Some(&(dotted, parent, pkey, leaf)) = groups.iter().find(|g| g.0.is_some() && (g.0 == here || g.1 == here)) {
                let value = &raw[top[dotted.expect("a group")].value.clone()];
                let dotted_first = parent.is_none() || dotted < parent;
                match parent {
                    None if rebuilt => {
                        w.key(pkey);
                        changed_object(w.out, raw, &[], Some((leaf, value)), &[]);
                    }
                    None => {} // at the end
                    Some(p) if rebuilt && dotted_first => {
                        if here == dotted {
                            w.key(pkey);
                            changed_object(w.out, raw, &sub[top[p].members.clone()], Some((leaf, value)), &[]);
                        }
                    }
                    Some(p) => {
                        if here == parent {
                            w.key(pkey);
                            changed_object(w.out, raw, &sub[top[p].members.clone()], None, &[(leaf, value)]);
                        }
                    }
                }
                continue;
            }
            if here == at.event {
                w.key(K_EVENT);
                changed_object(w.out, raw, &sub[m.members.clone()], None, &[(K_INGESTED, &self.ingested), (K_DATASET, &entry.dataset)]);
            } else if here == at.ecs && at.ecs_version.is_none() {
                if !is_obj(i) {
                    w.member(K_ECS, &self.ecs);
                } else if field(raw, sub, m, K_VERSION).is_none() {
                    w.key(K_ECS);
                    changed_object(w.out, raw, &sub[m.members.clone()], None, &[(K_VERSION, &self.ecs_version)]);
                } else {
                    w.copy(m);
                }
            } else if here == at.health && entry.state.is_some() {
                let state: &[u8] = entry.state.as_deref().expect("checked");
                let value = &raw[m.value.clone()];
                if is_obj(i) {
                    if field(raw, sub, m, K_STATE).is_none() {
                        w.key(K_HEALTH);
                        changed_object(w.out, raw, &sub[m.members.clone()], None, &[(K_STATE, state)]);
                    } else {
                        w.copy(m);
                    }
                } else if value == b"null" {
                    w.key(K_HEALTH);
                    changed_object(w.out, raw, &[], None, &[(K_STATE, state)]);
                } else {
                    w.key(K_HEALTH);
                    changed_object(w.out, raw, &[], Some((K_VALUE, value)), &[(K_STATE, state)]);
                }
            } else if here == at.data_stream {
                w.member(K_DATA_STREAM, &entry.data_stream);
            } else {
                w.copy(m);
            }
        }
        // at the end, in the order the Python path adds them: the objects of dotted keys (in the
        // record's order), ecs, agent, health, data_stream
        if !rebuilt {
            let mut created: Vec<(usize, &[u8], &[u8], &[u8])> = Vec::new();
            for (dotted, parent, pkey, leaf) in groups {
                if let (Some(d), None) = (dotted, parent) {
                    created.push((d, pkey, leaf, &raw[top[d].value.clone()]));
                }
            }
            created.sort_by_key(|c| c.0);
            for (_, pkey, leaf, value) in created {
                w.key(pkey);
                changed_object(w.out, raw, &[], Some((leaf, value)), &[]);
            }
        }
        if at.ecs.is_none() && at.ecs_version.is_none() {
            w.member(K_ECS, &self.ecs);
        }
        if at.agent.is_none() {
            w.member(K_AGENT, &self.agent);
        }
        if let (None, Some(state)) = (at.health, &entry.state) {
            w.key(K_HEALTH);
            changed_object(w.out, raw, &[], None, &[(K_STATE, state)]);
        }
        if at.data_stream.is_none() {
            w.member(K_DATA_STREAM, &entry.data_stream);
        }
        w.close();
        Ok(Some(Found { ts: ts_m.value.start + 1..ts_m.value.end - 1, level, code }))
    }
}

#[pymodule]
fn elk_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Batch>()?;
    Ok(())
}
