//! `extract` and `inject` on whole header maps: B3 written in both forms and read back,
//! oversized and repeated headers ignored with a reason, stale headers replaced, and a
//! property test feeding arbitrary header maps to `extract`.

use breakwater_tracing_mw::extract::MAX_HEADER_BYTES;
use breakwater_tracing_mw::{
    B3Form, Baggage, Formats, Outgoing, SpanId, TraceFlags, TraceId, TraceState, extract, inject,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn b3_only(form: B3Form) -> Formats {
    Formats {
        w3c: false,
        baggage: false,
        b3: true,
        b3_inject: Some(form),
        amzn: false,
        request_id: false,
    }
}

fn inject_ids(map: &mut HeaderMap, formats: &Formats, sampled: bool) {
    let (state, baggage) = (TraceState::default(), Baggage::default());
    let out = Outgoing {
        trace_id: TraceId::from_hex(TRACE).unwrap(),
        span_id: SpanId::from_hex(SPAN).unwrap(),
        flags: TraceFlags::default().with_sampled(sampled),
        trace_state: &state,
        baggage: &baggage,
        request_id: None,
    };
    inject(map, &out, formats);
}

#[test]
fn b3_is_written_in_both_forms_and_read_back() {
    for sampled in [true, false] {
        let flag = if sampled { "1" } else { "0" };
        // A caller's B3 headers copied onto the call are replaced, never mixed with ours.
        let stale = [
            ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ];

        let mut single = headers(&stale);
        inject_ids(&mut single, &b3_only(B3Form::Single), sampled);
        assert_eq!(single["b3"], format!("{TRACE}-{SPAN}-{flag}"));
        assert!(single.get("x-b3-traceid").is_none());
        assert!(single.get("x-b3-parentspanid").is_none());

        let mut multi = headers(&stale);
        inject_ids(&mut multi, &b3_only(B3Form::Multi), sampled);
        assert_eq!(multi["x-b3-traceid"], TRACE);
        assert_eq!(multi["x-b3-spanid"], SPAN);
        assert_eq!(multi["x-b3-sampled"], flag);
        assert!(multi.get("b3").is_none());
        assert!(multi.get("x-b3-parentspanid").is_none());

        for map in [&single, &multi] {
            let read = extract(map, &b3_only(B3Form::Single));
            assert!(read.refused.is_empty(), "{:?}", read.refused);
            let parent = read.parent.expect("our B3 reads back");
            assert_eq!(parent.trace_id.to_string(), TRACE);
            assert_eq!(parent.span_id.to_string(), SPAN);
            assert_eq!(parent.flags.is_sampled(), sampled);
        }
    }
}

#[test]
fn stale_baggage_and_request_ids_are_not_passed_on() {
    let mut map = headers(&[("baggage", "user=someone-else"), ("x-request-id", "old")]);
    inject_ids(&mut map, &Formats::default(), true);
    assert_eq!(map["traceparent"], TP);
    assert!(map.get("baggage").is_none(), "no baggage of ours to send");
    assert!(map.get("x-request-id").is_none(), "no request id of ours");
}

#[test]
fn oversized_headers_are_ignored_with_the_reason() {
    let long_state = format!("a={}", "x".repeat(MAX_HEADER_BYTES));
    let long_baggage = format!("k={}", "v".repeat(MAX_HEADER_BYTES));
    let map = headers(&[
        ("traceparent", TP),
        ("tracestate", &long_state),
        ("baggage", &long_baggage),
    ]);
    let read = extract(&map, &Formats::default());
    let parent = read.parent.expect("the traceparent itself is fine");
    assert_eq!(parent.trace_id.to_string(), TRACE);
    assert_eq!(
        parent.trace_state,
        TraceState::default(),
        "tracestate ignored"
    );
    assert_eq!(read.baggage, Baggage::default(), "baggage ignored");
    for name in ["tracestate", "baggage"] {
        assert!(
            read.refused
                .iter()
                .any(|e| e.to_string().contains(name) && e.to_string().contains("longer than")),
            "{name}: {:?}",
            read.refused
        );
    }
    // The same limit holds for a list sent as many lines that add up past it.
    let piece = format!("k={}", "v".repeat(1000));
    let mut many = headers(&[("traceparent", TP)]);
    for _ in 0..10 {
        many.append("baggage", HeaderValue::from_str(&piece).unwrap());
    }
    let read = extract(&many, &Formats::default());
    assert_eq!(read.baggage, Baggage::default());
    assert!(
        read.refused
            .iter()
            .any(|e| e.to_string().contains("longer than"))
    );
}

#[test]
fn a_repeated_traceparent_starts_a_new_trace() {
    let map = headers(&[("traceparent", TP), ("traceparent", TP)]);
    let read = extract(&map, &Formats::default());
    assert!(read.parent.is_none());
    assert!(
        read.refused
            .iter()
            .any(|e| e.to_string().contains("more than once"))
    );
}

#[test]
fn repeated_list_headers_are_joined_in_order_and_repeated_ids_refused() {
    // Lines of one name between other headers, as proxies append them.
    let map = headers(&[
        ("tracestate", "a=1"),
        ("host", "example"),
        ("traceparent", TP),
        ("baggage", "k1=v1"),
        ("tracestate", "b=2,c=3"),
        ("x-request-id", "first"),
        ("user-agent", "test"),
        ("baggage", "k2=v2"),
        ("x-request-id", "second"),
        ("x-b3-traceid", TRACE),
        ("x-b3-traceid", TRACE),
    ]);
    let read = extract(&map, &Formats::default());
    let parent = read.parent.expect("traceparent read");
    assert_eq!(parent.source, "traceparent");
    let members: Vec<_> = parent.trace_state.members().collect();
    assert_eq!(members, [("a", "1"), ("b", "2"), ("c", "3")]);
    assert_eq!(read.baggage.to_header(), "k1=v1,k2=v2");
    assert!(read.request_id.is_none());
    let reasons: Vec<String> = read.refused.iter().map(|e| e.to_string()).collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("x-request-id") && reasons[0].contains("more than once"));

    // Without traceparent, repeated B3 ids are refused by name and start a new trace.
    let map = headers(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-traceid", TRACE),
    ]);
    let read = extract(&map, &Formats::default());
    assert!(read.parent.is_none());
    assert!(read.refused.iter().any(|e| {
        let e = e.to_string();
        e.contains("x-b3-traceid") && e.contains("more than once")
    }));
}

const NAMES: &[&str] = &[
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-request-id",
    "x-amzn-trace-id",
];

fn header_map() -> impl Strategy<Value = Vec<(usize, Vec<u8>)>> {
    // Values from any bytes a header value may hold, and from pieces of valid headers.
    let value = prop_oneof![
        proptest::collection::vec(0x20u8..=0xff, 0..80),
        "[0-9a-f-]{0,70}".prop_map(String::into_bytes),
        Just(TP.as_bytes().to_vec()),
        Just(format!("{TRACE}-{SPAN}-d").into_bytes()),
    ];
    proptest::collection::vec((0..NAMES.len(), value), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No header map makes `extract` panic, whatever is repeated or malformed; what it
    /// accepts it writes back out as valid header values.
    #[test]
    fn any_header_map_is_read_or_refused(pairs in header_map()) {
        let mut map = HeaderMap::new();
        for (name, value) in &pairs {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                map.append(NAMES[*name], value);
            }
        }
        let all = Formats { amzn: true, b3_inject: Some(B3Form::Multi), ..Formats::default() };
        let read = extract(&map, &all);
        if let Some(parent) = &read.parent {
            let mut out = HeaderMap::new();
            let outgoing = Outgoing {
                trace_id: parent.trace_id,
                span_id: parent.span_id,
                flags: parent.flags,
                trace_state: &parent.trace_state,
                baggage: &read.baggage,
                request_id: read.request_id.as_ref(),
            };
            inject(&mut out, &outgoing, &all);
            let back = extract(&out, &all);
            prop_assert_eq!(back.parent.map(|p| (p.trace_id, p.span_id)), Some((parent.trace_id, parent.span_id)));
            prop_assert!(back.refused.is_empty(), "{:?}", back.refused);
        }
    }
}
