//! The browser player that `aeplay serve` serves at `/`: the page and its scripts
//! (`player/web/www`) and the decoder in WebAssembly (`player/web`, built by `scripts/web`),
//! all embedded in the binary.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file and its media type.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// Said by the decoder's script when this binary was built without the decoder.
#[cfg(not(web_decoder))]
const NO_DECODER: &[u8] = b"throw new Error('this aeplay was built without the browser decoder: \
run scripts/web, then build aeplay again');\n";

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        media_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../web/www/index.html"),
    },
    Asset {
        path: "/player.js",
        media_type: JS,
        bytes: include_bytes!("../web/www/player.js"),
    },
    Asset {
        path: "/worker.js",
        media_type: JS,
        bytes: include_bytes!("../web/www/worker.js"),
    },
    Asset {
        path: "/aeplay_web.js",
        media_type: JS,
        #[cfg(web_decoder)]
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/aeplay_web.js")),
        #[cfg(not(web_decoder))]
        bytes: NO_DECODER,
    },
    Asset {
        path: "/aeplay_web_bg.wasm",
        media_type: "application/wasm",
        bytes: include_bytes!(concat!(env!("OUT_DIR"), "/aeplay_web_bg.wasm")),
    },
];

/// Whether this binary carries the decoder (else the page reports how to build it).
pub const HAS_DECODER: bool = cfg!(web_decoder);

fn respond(asset: &'static Asset) -> Response {
    if asset.bytes.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            "this aeplay was built without the browser decoder\n",
        )
            .into_response();
    }
    (
        [
            (CONTENT_TYPE, asset.media_type),
            // The files change with the binary only; a page reloaded after an upgrade must not
            // mix old and new ones.
            (CACHE_CONTROL, "no-cache"),
        ],
        asset.bytes,
    )
        .into_response()
}

/// The page's routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { respond(asset) }))
    })
}
