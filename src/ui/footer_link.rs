//! The footer link that opens the share-screen modal.

use agent_assist_web::dom::{self, Listener};
use web_sys::{Document, Element, ShadowRoot};

pub struct FooterLink {
    pub button: Element,
    _click: Listener,
    /// False once [`FooterLink::release`] handed the button on.
    owned: bool,
}

impl FooterLink {
    pub fn new(
        doc: &Document,
        root: &ShadowRoot,
        label: &str,
        on_click: impl FnMut() + 'static,
    ) -> FooterLink {
        FooterLink::adopt(draw(doc, root, label), on_click)
    }

    /// Takes over a link button that is already in place (the boot
    /// module's), so it keeps its place in the page and its focus.
    pub fn adopt(button: Element, on_click: impl FnMut() + 'static) -> FooterLink {
        let mut on_click = on_click;
        let click = Listener::new(&button, "click", move |_| on_click());
        FooterLink {
            button,
            _click: click,
            owned: true,
        }
    }

    /// Removes this link's click listener and leaves the button in place
    /// for the widget module, which adopts it.
    #[cfg(feature = "boot")]
    pub fn release(mut self) {
        self.owned = false;
    }
}

impl FooterLink {
    /// Hides or shows the link (`auth: "code"` hides it until `identify()`).
    /// The host stays where the site put it, so showing it moves nothing.
    pub fn set_hidden(&self, hidden: bool) {
        let _ = self.button.toggle_attribute_with_force("hidden", hidden);
    }
}

/// The link's button, added to `root` (the script tag's loader.js draws the
/// same markup before the boot module is here).
pub fn draw(doc: &Document, root: &ShadowRoot, label: &str) -> Element {
    // A button, not an anchor: it opens a dialog rather than navigating,
    // and assistive technology should announce it that way.
    let button = dom::button(doc, "link", label);
    dom::attr(&button, "aria-haspopup", "dialog");
    dom::attr(&button, "part", "link");
    let _ = root.append_child(&button);
    button
}

impl Drop for FooterLink {
    fn drop(&mut self) {
        if self.owned {
            self.button.remove();
        }
    }
}
