//! A `set_headers` template over a record: the first line is the template, the others the
//! record's values; it renders to a valid header value without CR, LF or NUL, or to nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let mut lines = data.split('\n');
    let template = lines.next().unwrap_or_default();
    let values: Vec<String> = lines.map(str::to_string).collect();
    let roles = template.len() as u8;
    let rec = clever_gateway::testing::invariants::record_from(&values, roles);
    clever_gateway::testing::invariants::check_template(template, &rec);
});
