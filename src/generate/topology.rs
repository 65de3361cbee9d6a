//! The shop the generator simulates: services, the operations they serve or call, how
//! long each takes, how often it fails, and the functions its CPU time is spent in.

/// How a service writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// An nginx access log in front of a Node.js app writing JSON.
    Edge,
    /// Go: `key=value` pairs (logfmt).
    Logfmt,
    /// Java: Logback's pattern layout, stack traces on errors.
    Java,
    /// Python: JSON lines.
    Json,
}

pub struct Service {
    pub name: &'static str,
    pub language: &'static str,
    pub style: LogStyle,
    pub pods: u64,
    /// Functions every CPU profile of the service spends time in outside any span.
    pub runtime_frames: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
}

pub struct Operation {
    pub service: usize,
    pub name: &'static str,
    pub kind: Kind,
    /// `http.route` of a server span, or the database system of a client span.
    pub target: &'static str,
    /// Median time spent in the operation itself, in milliseconds.
    pub self_ms: f64,
    /// Failures per 10,000 calls.
    pub failures: u64,
    /// Operations it calls, one after another.
    pub calls: &'static [usize],
    /// The call stack CPU time of this operation is sampled in, outermost first.
    pub frames: &'static [&'static str],
}

pub const SERVICES: &[Service] = &[
    Service {
        name: "frontend",
        language: "nodejs",
        style: LogStyle::Edge,
        pods: 4,
        runtime_frames: &["node::Start", "uv_run", "uv__io_poll"],
    },
    Service {
        name: "cart",
        language: "go",
        style: LogStyle::Logfmt,
        pods: 3,
        runtime_frames: &[
            "runtime.main",
            "runtime.gcBgMarkWorker",
            "runtime.scanobject",
        ],
    },
    Service {
        name: "checkout",
        language: "java",
        style: LogStyle::Java,
        pods: 3,
        runtime_frames: &[
            "java.lang.Thread.run",
            "G1 Young Generation",
            "G1ParScanThreadState::trim_queue",
        ],
    },
    Service {
        name: "payments",
        language: "go",
        style: LogStyle::Logfmt,
        pods: 2,
        runtime_frames: &["runtime.main", "runtime.gcBgMarkWorker", "runtime.markroot"],
    },
    Service {
        name: "search",
        language: "python",
        style: LogStyle::Json,
        pods: 3,
        runtime_frames: &["<module>", "gunicorn.arbiter:run", "selectors:select"],
    },
    Service {
        name: "auth",
        language: "go",
        style: LogStyle::Logfmt,
        pods: 2,
        runtime_frames: &["runtime.main", "runtime.gcBgMarkWorker", "runtime.mallocgc"],
    },
    Service {
        name: "shipping",
        language: "java",
        style: LogStyle::Java,
        pods: 2,
        runtime_frames: &[
            "java.lang.Thread.run",
            "G1 Concurrent Mark",
            "G1CMTask::do_marking_step",
        ],
    },
    Service {
        name: "email",
        language: "java",
        style: LogStyle::Java,
        pods: 1,
        runtime_frames: &[
            "java.lang.Thread.run",
            "G1 Young Generation",
            "G1ParScanThreadState::trim_queue",
        ],
    },
];

/// Requests enter at these operations, with these weights (out of 100).
pub const ENTRIES: &[(usize, u64)] = &[(0, 50), (1, 35), (2, 15)];

pub const OPERATIONS: &[Operation] = &[
    // 0
    Operation {
        service: 0,
        name: "GET /",
        kind: Kind::Server,
        target: "/",
        self_ms: 4.0,
        failures: 5,
        calls: &[3, 7],
        frames: &[
            "node::Start",
            "processTicksAndRejections",
            "router.handle",
            "renderHome",
            "React.renderToString",
        ],
    },
    // 1
    Operation {
        service: 0,
        name: "GET /cart",
        kind: Kind::Server,
        target: "/cart",
        self_ms: 3.0,
        failures: 5,
        calls: &[3, 5],
        frames: &[
            "node::Start",
            "processTicksAndRejections",
            "router.handle",
            "renderCart",
            "JSON.parse",
        ],
    },
    // 2
    Operation {
        service: 0,
        name: "POST /checkout",
        kind: Kind::Server,
        target: "/checkout",
        self_ms: 5.0,
        failures: 10,
        calls: &[3, 9],
        frames: &[
            "node::Start",
            "processTicksAndRejections",
            "router.handle",
            "submitCheckout",
            "validateForm",
        ],
    },
    // 3
    Operation {
        service: 5,
        name: "POST /auth/verify",
        kind: Kind::Server,
        target: "/auth/verify",
        self_ms: 1.5,
        failures: 2,
        calls: &[4],
        frames: &[
            "runtime.goexit",
            "net/http.(*conn).serve",
            "auth.(*Handler).Verify",
            "crypto/ecdsa.Verify",
            "crypto/internal/nistec.(*P256Point).ScalarMult",
        ],
    },
    // 4
    Operation {
        service: 5,
        name: "GET session",
        kind: Kind::Client,
        target: "redis",
        self_ms: 0.4,
        failures: 1,
        calls: &[],
        frames: &[
            "runtime.goexit",
            "net/http.(*conn).serve",
            "auth.(*Store).Session",
            "github.com/redis/go-redis/v9.(*Client).Get",
            "syscall.Syscall",
        ],
    },
    // 5
    Operation {
        service: 1,
        name: "GET /cart/{id}",
        kind: Kind::Server,
        target: "/cart/{id}",
        self_ms: 1.0,
        failures: 3,
        calls: &[6],
        frames: &[
            "runtime.goexit",
            "net/http.(*conn).serve",
            "cart.(*Handler).Get",
            "encoding/json.Marshal",
            "encoding/json.(*encodeState).reflectValue",
        ],
    },
    // 6
    Operation {
        service: 1,
        name: "HGETALL cart",
        kind: Kind::Client,
        target: "redis",
        self_ms: 0.6,
        failures: 2,
        calls: &[],
        frames: &[
            "runtime.goexit",
            "net/http.(*conn).serve",
            "cart.(*Store).Load",
            "github.com/redis/go-redis/v9.(*Client).HGetAll",
            "syscall.Syscall",
        ],
    },
    // 7
    Operation {
        service: 4,
        name: "GET /search",
        kind: Kind::Server,
        target: "/search",
        self_ms: 6.0,
        failures: 8,
        calls: &[8],
        frames: &[
            "<module>",
            "gunicorn.workers.sync:handle",
            "search.views:search",
            "search.ranking:score",
            "numpy.core:dot",
        ],
    },
    // 8
    Operation {
        service: 4,
        name: "POST /products/_search",
        kind: Kind::Client,
        target: "elasticsearch",
        self_ms: 9.0,
        failures: 5,
        calls: &[],
        frames: &[
            "<module>",
            "gunicorn.workers.sync:handle",
            "search.views:search",
            "elasticsearch.client:search",
            "urllib3.connectionpool:urlopen",
        ],
    },
    // 9
    Operation {
        service: 2,
        name: "POST /orders",
        kind: Kind::Server,
        target: "/orders",
        self_ms: 8.0,
        failures: 5,
        calls: &[5, 10, 12, 15, 14],
        frames: &[
            "java.lang.Thread.run",
            "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun",
            "com.shop.checkout.OrderController.place",
            "com.shop.checkout.OrderService.validate",
            "com.fasterxml.jackson.databind.ObjectMapper.readValue",
        ],
    },
    // 10
    Operation {
        service: 3,
        name: "POST /charge",
        kind: Kind::Server,
        target: "/charge",
        self_ms: 25.0,
        failures: 150,
        calls: &[11],
        frames: &[
            "runtime.goexit",
            "net/http.(*conn).serve",
            "payments.(*Handler).Charge",
            "payments.(*Gateway).Authorize",
            "crypto/tls.(*Conn).Write",
        ],
    },
    // 11
    Operation {
        service: 3,
        name: "INSERT payments",
        kind: Kind::Client,
        target: "postgresql",
        self_ms: 2.0,
        failures: 2,
        calls: &[],
        frames: &[
            "runtime.goexit",
            "net/http.(*conn).serve",
            "payments.(*Ledger).Record",
            "github.com/jackc/pgx/v5.(*Conn).Exec",
            "syscall.Syscall",
        ],
    },
    // 12
    Operation {
        service: 6,
        name: "GET /quote",
        kind: Kind::Server,
        target: "/quote",
        self_ms: 4.0,
        failures: 80,
        calls: &[13],
        frames: &[
            "java.lang.Thread.run",
            "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun",
            "com.shop.shipping.QuoteController.quote",
            "com.shop.shipping.RateTable.lookup",
            "java.util.HashMap.get",
        ],
    },
    // 13
    Operation {
        service: 6,
        name: "SELECT rates",
        kind: Kind::Client,
        target: "postgresql",
        self_ms: 3.0,
        failures: 3,
        calls: &[],
        frames: &[
            "java.lang.Thread.run",
            "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun",
            "com.shop.shipping.RateRepository.find",
            "org.postgresql.jdbc.PgPreparedStatement.executeQuery",
            "java.net.SocketInputStream.read",
        ],
    },
    // 14
    Operation {
        service: 7,
        name: "POST /send",
        kind: Kind::Server,
        target: "/send",
        self_ms: 12.0,
        failures: 20,
        calls: &[],
        frames: &[
            "java.lang.Thread.run",
            "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun",
            "com.shop.email.MailController.send",
            "com.shop.email.TemplateRenderer.render",
            "org.thymeleaf.TemplateEngine.process",
        ],
    },
    // 15
    Operation {
        service: 2,
        name: "INSERT orders",
        kind: Kind::Client,
        target: "postgresql",
        self_ms: 2.5,
        failures: 3,
        calls: &[],
        frames: &[
            "java.lang.Thread.run",
            "org.apache.tomcat.util.net.NioEndpoint$SocketProcessor.doRun",
            "com.shop.checkout.OrderRepository.save",
            "org.postgresql.jdbc.PgPreparedStatement.executeUpdate",
            "java.net.SocketOutputStream.write",
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest chain of calls below `op`; panics on a cycle.
    fn depth(op: usize, path: &mut Vec<usize>) -> usize {
        assert!(!path.contains(&op), "cycle through {path:?} → {op}");
        path.push(op);
        let below = OPERATIONS[op].calls.iter().map(|&c| depth(c, path)).max();
        path.pop();
        below.map_or(0, |d| d + 1)
    }

    #[test]
    fn operations_reference_what_exists_and_form_no_cycle() {
        for (i, op) in OPERATIONS.iter().enumerate() {
            assert!(op.service < SERVICES.len());
            assert!(!op.frames.is_empty());
            assert!(op.calls.iter().all(|&c| c < OPERATIONS.len()));
            assert!(depth(i, &mut Vec::new()) < 5);
        }
        assert_eq!(ENTRIES.iter().map(|(_, w)| w).sum::<u64>(), 100);
    }
}
