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

use json::{int_value, members, plain_str, write_str, Member, Scanner};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

/// A value of the document being written: bytes of the record copied as they are, or an object
/// the transform changed, or bytes it wrote.
enum Val<'a> {
    Raw(&'a [u8]),
    Obj(Vec<(&'a [u8], Val<'a>)>),
    Own(Vec<u8>),
}

type Obj<'a> = Vec<(&'a [u8], Val<'a>)>;

fn find(obj: &Obj<'_>, key: &[u8]) -> Option<usize> {
    obj.iter().position(|(k, _)| *k == key)
}

/// A dict's `d[key] = value`: in place when the key is there, else at the end.
fn set<'a>(obj: &mut Obj<'a>, key: &'a [u8], value: Val<'a>) {
    match find(obj, key) {
        Some(i) => obj[i].1 = value,
        None => obj.push((key, value)),
    }
}

fn is_object(v: &Val<'_>) -> bool {
    match v {
        Val::Raw(b) => b.first() == Some(&b'{'),
        Val::Obj(_) => true,
        Val::Own(b) => b.first() == Some(&b'{'),
    }
}

fn is_null(v: &Val<'_>) -> bool {
    matches!(v, Val::Raw(b"null"))
}

fn from_members<'a>(ms: Vec<Member<'a>>) -> Obj<'a> {
    ms.into_iter().map(|m| (m.key, Val::Raw(m.value))).collect()
}

/// The object at `obj[i]` opened for changes (it must be an object).
fn open<'a, 'b>(obj: &'b mut Obj<'a>, i: usize) -> Option<&'b mut Obj<'a>> {
    if let Val::Raw(b) = obj[i].1 {
        obj[i].1 = Val::Obj(from_members(members(b)?));
    }
    match &mut obj[i].1 {
        Val::Obj(o) => Some(o),
        _ => None,
    }
}

/// A raw value's bytes (for reading), whatever the transform did to the object around it.
fn raw<'a>(v: &Val<'a>) -> Option<&'a [u8]> {
    match v {
        Val::Raw(b) => Some(b),
        _ => None,
    }
}

fn write(out: &mut Vec<u8>, obj: &Obj<'_>) {
    out.push(b'{');
    for (n, (key, value)) in obj.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key);
        out.push(b':');
        match value {
            Val::Raw(b) => out.extend_from_slice(b),
            Val::Own(b) => out.extend_from_slice(b),
            Val::Obj(o) => write(out, o),
        }
    }
    out.push(b'}');
}

fn json_str(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 2);
    write_str(&mut v, s);
    v
}

/// `@timestamp`'s wire form, `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z` (collector.contract.timefmt.ISO_MS)
/// in ASCII digits (Python's `\d` takes other digits too: those take the Python path).
fn iso_ms(ts: &[u8]) -> bool {
    const SHAPE: &[u8; 24] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    ts.len() == 24
        && ts.iter().zip(SHAPE.iter()).all(|(&c, &s)| if s == b'd' { c.is_ascii_digit() } else { c == s })
}

/// What a record in the common case gives back besides its document.
struct Common<'r, 'py> {
    doc: Vec<u8>,
    name: &'r str,
    ts: &'r str,
    level: Option<usize>,
    code: Option<i128>,
    route: Bound<'py, PyTuple>,
}

/// One batch's fast path: the values every record of the batch shares, and the batch's caches
/// (each service's health state, each stream), shared with shipper/fast.py.
#[pyclass(module = "elk_native")]
struct Batch {
    latest: Vec<u8>,
    ingested: Vec<u8>,
    ecs_version: Vec<u8>,
    agent: Vec<u8>,
    namespace: String,
    own_writer: String,
    levels: Vec<Py<PyString>>,
    level_names: Vec<String>,
    states: Py<PyDict>,
    state_of: Py<PyAny>,
    routes: Py<PyDict>,
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
        levels: Vec<Bound<'_, PyString>>,
        states: Bound<'_, PyDict>,
        state_of: Bound<'_, PyAny>,
        routes: Bound<'_, PyDict>,
    ) -> PyResult<Self> {
        let mut agent = b"{\"type\":".to_vec();
        write_str(&mut agent, agent_type);
        agent.extend_from_slice(b",\"name\":");
        write_str(&mut agent, host_name);
        agent.push(b'}');
        let mut level_names = Vec::new();
        for l in &levels {
            level_names.push(l.to_str()?.to_owned());
        }
        Ok(Batch {
            latest: latest.as_bytes().to_vec(),
            ingested: json_str(ingested),
            ecs_version: json_str(ecs_version),
            agent,
            namespace: namespace.to_owned(),
            own_writer: own_writer.to_owned(),
            levels: levels.into_iter().map(|l| l.unbind()).collect(),
            level_names,
            states: states.unbind(),
            state_of: state_of.unbind(),
            routes: routes.unbind(),
        })
    }

    /// The record's document and what the monitor counts, as
    /// `(document, service name, stream, data_stream.type, @timestamp, log.level, status code >= 500)`,
    /// or None when the record is not the common one (the Python path then does it).
    fn transform<'py>(
        &self,
        py: Python<'py>,
        raw: &[u8],
        topic: &Bound<'py, PyString>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some(c) = self.common(py, raw, topic)? else {
            return Ok(None);
        };
        let name = PyString::new(py, c.name);
        let level = match c.level {
            Some(i) => self.levels[i].bind(py).clone().into_any(),
            None => py.None().into_bound(py),
        };
        let code = match c.code {
            Some(v) => v.into_pyobject(py)?.into_any(),
            None => py.None().into_bound(py),
        };
        let items: [Bound<'py, PyAny>; 7] = [
            PyBytes::new(py, &c.doc).into_any(),
            name.into_any(),
            c.route.get_item(0)?,
            c.route.get_item(1)?,
            PyString::new(py, c.ts).into_any(),
            level,
            code,
        ];
        Ok(Some(PyTuple::new(py, items)?))
    }
}

impl Batch {
    fn common<'r, 'py>(&self, py: Python<'py>, raw: &'r [u8], topic: &Bound<'py, PyString>) -> PyResult<Option<Common<'r, 'py>>> {
        Ok(self.common_inner(py, raw, topic)?.flatten())
    }

    /// Ok(None) / Ok(Some(None)): not the common record; Err: Python failed (a state_of that raised).
    fn common_inner<'r, 'py>(
        &self,
        py: Python<'py>,
        raw: &'r [u8],
        topic: &Bound<'py, PyString>,
    ) -> PyResult<Option<Option<Common<'r, 'py>>>> {
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
        need!(std::str::from_utf8(raw).ok());
        let mut top_members = Vec::with_capacity(16);
        let scanner = need!(Scanner::new(raw).top_object(&mut top_members));
        check!(!scanner.nested_dot);
        let mut rec: Obj<'r> = from_members(top_members);

        // expand_keys: only `log.level` and `ecs.version` may be dotted, each moved into its object
        // (an existing one without that key, or a new one at the end), in the record's order
        let mut moves: Vec<(&[u8], &[u8], &[u8])> = Vec::with_capacity(2);
        for (key, _) in &rec {
            if key.contains(&b'.') {
                if *key == K_LOG_LEVEL {
                    moves.push((K_LOG_LEVEL, K_LOG, K_LEVEL));
                } else if *key == K_ECS_VERSION {
                    moves.push((K_ECS_VERSION, K_ECS, K_VERSION));
                } else {
                    return Ok(None);
                }
            }
        }
        for &(_, parent, leaf) in &moves {
            if let Some(i) = find(&rec, parent) {
                check!(is_object(&rec[i].1));
                let obj = need!(open(&mut rec, i));
                check!(find(obj, leaf).is_none());
            }
        }
        // Python's expand_keys moves them in place when the raw scan can count the dotted keys
        // (shipper/dotted.py: no backslash in the record), and rebuilds the record otherwise, where
        // each object takes the place of the first of its two keys and the leaf its order among them
        let rebuilt = !moves.is_empty() && raw.contains(&b'\\');
        for (dotted, parent, leaf) in moves {
            let i = need!(find(&rec, dotted));
            match find(&rec, parent) {
                Some(p) if rebuilt && i < p => {
                    let mut obj = vec![(leaf, std::mem::replace(&mut rec[i].1, Val::Raw(b"null")))];
                    obj.append(need!(open(&mut rec, p)));
                    rec[i] = (parent, Val::Obj(obj));
                    rec.remove(p);
                }
                Some(p) => {
                    let value = rec.remove(i).1;
                    let p = if p > i { p - 1 } else { p };
                    need!(open(&mut rec, p)).push((leaf, value));
                }
                None if rebuilt => {
                    let value = std::mem::replace(&mut rec[i].1, Val::Raw(b"null"));
                    rec[i] = (parent, Val::Obj(vec![(leaf, value)]));
                }
                None => {
                    let value = rec.remove(i).1;
                    rec.push((parent, Val::Obj(vec![(leaf, value)])));
                }
            }
        }

        // normalize_timestamp: in the wire form and not in the future
        let ts_at = need!(find(&rec, K_TIMESTAMP));
        let ts = need!(plain_str(need!(raw_of(&rec[ts_at].1))));
        check!(iso_ms(ts.as_bytes()) && ts.as_bytes() <= self.latest.as_slice());

        // normalize_level: a canonical level (or none) in `log`, and a message
        check!(find(&rec, K_MESSAGE).is_some());
        let log_at = need!(find(&rec, K_LOG));
        check!(is_object(&rec[log_at].1));
        let log = need!(open(&mut rec, log_at));
        let level = match find(log, K_LEVEL) {
            None => None,
            Some(i) => {
                let v = need!(raw_of(&log[i].1));
                if v == b"null" {
                    None
                } else {
                    let text = need!(plain_str(v));
                    Some(need!(self.level_names.iter().position(|l| l == text)))
                }
            }
        };

        // resolve_service: a named service object whose node is no text (no headers: the caller's check)
        let svc_at = need!(find(&rec, K_SERVICE));
        let svc_raw = need!(raw_of(&rec[svc_at].1));
        check!(svc_raw.first() == Some(&b'{'));
        let svc = need!(members(svc_raw));
        let svc_name = need!(svc.iter().find(|m| m.key == K_NAME));
        let name = need!(plain_str(svc_name.value));
        check!(!name.is_empty());
        if let Some(node) = svc.iter().find(|m| m.key == K_NODE) {
            check!(node.value.first() != Some(&b'"'));
        }

        // stamp_ingest: an event object with no provider, or a text one that is not the shipper's
        let ev_at = need!(find(&rec, K_EVENT));
        check!(is_object(&rec[ev_at].1));
        let event = need!(open(&mut rec, ev_at));
        if let Some(i) = find(event, K_PROVIDER) {
            let v = need!(raw_of(&event[i].1));
            if v != b"null" {
                check!(need!(plain_str(v)) != self.own_writer);
            }
        }
        let metric = match find(event, K_KIND) {
            None => false,
            Some(i) => {
                let v = need!(raw_of(&event[i].1));
                if v.first() == Some(&b'"') {
                    need!(plain_str(v)) == "metric"
                } else {
                    false
                }
            }
        };
        if let Some(i) = find(event, K_ID) {
            let v = need!(raw_of(&event[i].1));
            check!(!(v.first() == Some(&b'"') && v.len() > 2)); // its own id: record_id decides
        }
        set(event, K_INGESTED, Val::Own(self.ingested.clone()));
        match find(&rec, K_ECS) {
            Some(i) if is_object(&rec[i].1) => {
                let ecs = need!(open(&mut rec, i));
                if find(ecs, K_VERSION).is_none() {
                    ecs.push((K_VERSION, Val::Own(self.ecs_version.clone())));
                }
            }
            _ => set(&mut rec, K_ECS, Val::Obj(vec![(K_VERSION, Val::Own(self.ecs_version.clone()))])),
        }
        if find(&rec, K_AGENT).is_none() {
            rec.push((K_AGENT, Val::Own(self.agent.clone())));
        }
        let pyname = PyString::new(py, name);
        let states = self.states.bind(py);
        let state = match states.get_item(&pyname)? {
            Some(s) => s,
            None => {
                let s = self.state_of.bind(py).call1((&pyname,))?;
                states.set_item(&pyname, &s)?;
                s
            }
        };
        if !state.is_none() {
            let state = need!(state.cast::<PyString>().ok()).to_str()?.to_owned();
            let state_v = Val::Own(json_str(&state));
            match find(&rec, K_HEALTH) {
                None => rec.push((K_HEALTH, Val::Obj(vec![(K_STATE, state_v)]))),
                Some(i) if is_null(&rec[i].1) => rec[i].1 = Val::Obj(vec![(K_STATE, state_v)]),
                Some(i) if is_object(&rec[i].1) => {
                    let health = need!(open(&mut rec, i));
                    if find(health, K_STATE).is_none() {
                        health.push((K_STATE, state_v));
                    }
                }
                Some(i) => {
                    let old = std::mem::replace(&mut rec[i].1, Val::Raw(b"null"));
                    rec[i].1 = Val::Obj(vec![(K_VALUE, old), (K_STATE, state_v)]);
                }
            }
        }

        // route: the stream this batch found for the (topic, service, metric kind) already
        let key = PyTuple::new(py, [topic.clone().into_any(), pyname.into_any(), pyo3::types::PyBool::new(py, metric).to_owned().into_any()])?;
        let route = need!(self.routes.bind(py).get_item(&key)?);
        let route = need!(route.cast_into::<PyTuple>().ok());
        check!(route.len() == 3);
        let type_ = route.get_item(1)?;
        let dataset = route.get_item(2)?;
        let type_ = need!(type_.cast::<PyString>().ok()).to_str()?.to_owned();
        let dataset = need!(dataset.cast::<PyString>().ok()).to_str()?.to_owned();
        let mut ds = b"{\"type\":".to_vec();
        write_str(&mut ds, &type_);
        ds.extend_from_slice(b",\"dataset\":");
        write_str(&mut ds, &dataset);
        ds.extend_from_slice(b",\"namespace\":");
        write_str(&mut ds, &self.namespace);
        ds.push(b'}');
        set(&mut rec, K_DATA_STREAM, Val::Own(ds));
        let ev_at = need!(find(&rec, K_EVENT));
        let event = need!(open(&mut rec, ev_at));
        set(event, K_DATASET, Val::Own(json_str(&dataset)));

        // the monitor's error signal: a status code of 500 or more
        let mut code = None;
        if let Some(i) = find(&rec, K_HTTP) {
            if let Some(b) = raw_of(&rec[i].1).filter(|b| b.first() == Some(&b'{')) {
                let http = need!(members(b));
                if let Some(resp) = http.iter().find(|m| m.key == K_RESPONSE && m.value.first() == Some(&b'{')) {
                    let resp = need!(members(resp.value));
                    if let Some(sc) = resp.iter().find(|m| m.key == K_STATUS_CODE) {
                        if !sc.value.contains(&b'.') {
                            if let Some(v) = int_value(sc.value) {
                                if v >= 500 {
                                    code = Some(v);
                                }
                            }
                        }
                    }
                }
            }
        }

        let mut doc = Vec::with_capacity(raw.len() + 192);
        write(&mut doc, &rec);
        Ok(Some(Some(Common { doc, name, ts, level, code, route })))
    }
}

fn raw_of<'a>(v: &Val<'a>) -> Option<&'a [u8]> {
    raw(v)
}

#[pymodule]
fn elk_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Batch>()?;
    Ok(())
}
