//! The wit-bindgen layer: the rules of [`spot_rules`] and the seed's element.

spot_rules::component! {
    name: "spot-default",
    wit: "../wit",
    element: spot_rules::render::element,
}
