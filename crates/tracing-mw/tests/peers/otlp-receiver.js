// A real OTLP receiver (@elastic/mockotlpserver) for the interop test: listens on loopback
// with free ports for OTLP/HTTP and OTLP/gRPC, prints one JSON line with both URLs, then one
// JSON line per span received ({transport-independent fields}), until stdin closes.
'use strict';
const {MockOtlpServer, normalizeTrace} = require('@elastic/mockotlpserver');

function hex(id) {
    if (typeof id === 'string') return id;
    if (id && id.type === 'Buffer') return Buffer.from(id.data).toString('hex');
    return Buffer.from(id || []).toString('hex');
}

async function main() {
    const server = new MockOtlpServer({
        logLevel: 'warn',
        services: ['http', 'grpc'],
        httpHostname: '127.0.0.1',
        httpPort: 0,
        grpcHostname: '127.0.0.1',
        grpcPort: 0,
        onTrace(trace) {
            const norm = normalizeTrace(trace);
            for (const rs of norm.resourceSpans || []) {
                const service = (rs.resource && rs.resource.attributes || {})['service.name'];
                for (const ss of rs.scopeSpans || []) {
                    for (const span of ss.spans || []) {
                        process.stdout.write(JSON.stringify({
                            span: {
                                service,
                                name: span.name,
                                kind: span.kind,
                                traceId: hex(span.traceId),
                                spanId: hex(span.spanId),
                                parentSpanId: hex(span.parentSpanId),
                                attributes: span.attributes || {},
                            },
                        }) + '\n');
                    }
                }
            }
        },
    });
    await server.start();
    process.stdout.write(JSON.stringify({ready: {http: String(server.httpUrl), grpc: String(server.grpcUrl)}}) + '\n');
    process.stdin.resume();
    process.stdin.on('end', async () => {
        await server.close();
        process.exit(0);
    });
}

main().catch((err) => {
    console.error('otlp-receiver failed:', err);
    process.exit(1);
});
