//! The wit-bindgen layer: the default rules (`spot_rules::handlers`), this crate's element.

spot_rules::component! {
    name: "spot-example-change",
    wit: "../../wit",
    element: crate::element::element,
}
