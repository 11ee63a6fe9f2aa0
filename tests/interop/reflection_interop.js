#!/usr/bin/env node
/*
 * Interop test: node's pure-JS gRPC stack (@grpc/grpc-js + protobufjs) talks to
 * filermetad knowing nothing but what server reflection tells it, the way
 * grpcurl does. No .proto file of this repository is read: the reflection
 * messages are declared inline below from the public grpc.reflection schema,
 * and every other type is built from the descriptors the server returns.
 *
 * Usage: FILERMETAD=/path/to/filermetad node reflection_interop.js
 * Output: TAP version 13, one case per line; exit status 1 if any case failed.
 * Dependencies: npm ci --prefix tests/interop
 */
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const CALL_DEADLINE_MS = 5000; /* every RPC */
const START_TIMEOUT_MS = 10000; /* until the port file appears */
const STOP_TIMEOUT_MS = 5000; /* SIGTERM to exit */
const WATCHDOG_MS = 28000; /* the whole script */

const CASES = [
  'reflection v1alpha ListServices lists filer, health and both reflection services',
  'reflection v1 ListServices lists the same services',
  'file_containing_symbol filer_pb.SeaweedFiler: methods and SubscribeMetadataRequest field numbers',
  'Ping through types built from reflection: start_time_ns > 0, stop_time_ns >= start_time_ns',
  'GetFilerConfiguration through types built from reflection',
  'file_containing_symbol no.such.Symbol answers error_response with error_code 5 (NOT_FOUND)',
  'unimplemented method /filer_pb.SeaweedFiler/CollectionList fails with status 12 (UNIMPLEMENTED)',
  'grpc.health.v1.Health/Check through types built from reflection answers SERVING',
  'SIGTERM: filermetad exits with code 0 within 5 s',
];

/* ------------------------------------------------------------------ TAP */

let nextCase = 0; /* index into CASES of the next result to print */
let failures = 0;

function diag(text) {
  for (const line of String(text).split('\n')) process.stdout.write('# ' + line + '\n');
}

function report(ok, why) {
  const n = nextCase + 1;
  process.stdout.write(`${ok ? 'ok' : 'not ok'} ${n} - ${CASES[nextCase]}\n`);
  if (!ok) {
    failures++;
    diag(why);
  }
  nextCase++;
}

/* Fails every case not yet reported: the first with `why`, the rest briefly. */
function failRemaining(why) {
  const first = nextCase;
  while (nextCase < CASES.length) {
    report(false, nextCase === first ? why : `not run: see case ${first + 1}`);
  }
}

process.stdout.write('TAP version 13\n');
process.stdout.write(`1..${CASES.length}\n`);

/* ------------------------------------------------------------------ dependencies */

let grpc, protobuf, descriptor;
try {
  grpc = require('@grpc/grpc-js');
  protobuf = require('protobufjs');
  descriptor = require('protobufjs/ext/descriptor');
} catch (e) {
  failRemaining('node dependencies are missing (' + e.message.split('\n')[0] + ');\n' +
                'run: npm ci --prefix tests/interop --no-audit --no-fund');
  process.exit(1);
}

const FILERMETAD = process.env.FILERMETAD;
if (!FILERMETAD) {
  failRemaining('FILERMETAD is not set: point it at the filermetad binary ' +
                '(meson test sets it; by hand: FILERMETAD=build/server/filermetad node tests/interop/reflection_interop.js)');
  process.exit(1);
}

/* ------------------------------------------------------------------ reflection schema (inline) */

/* From the public grpc/reflection/v1alpha/reflection.proto field list; v1 has
 * the same messages and field numbers. */
const REFLECTION_PROTO = `
syntax = "proto3";
package interop.reflection;
message ServerReflectionRequest {
  string host = 1;
  oneof message_request {
    string file_by_filename = 3;
    string file_containing_symbol = 4;
    ExtensionRequest file_containing_extension = 5;
    string all_extension_numbers_of_type = 6;
    string list_services = 7;
  }
}
message ExtensionRequest {
  string containing_type = 1;
  int32 extension_number = 2;
}
message ServerReflectionResponse {
  string valid_host = 1;
  ServerReflectionRequest original_request = 2;
  oneof message_response {
    FileDescriptorResponse file_descriptor_response = 4;
    ExtensionNumberResponse all_extension_numbers_response = 5;
    ListServiceResponse list_services_response = 6;
    ErrorResponse error_response = 7;
  }
}
message FileDescriptorResponse { repeated bytes file_descriptor_proto = 1; }
message ExtensionNumberResponse {
  string base_type_name = 1;
  repeated int32 extension_number = 2;
}
message ListServiceResponse { repeated ServiceResponse service = 1; }
message ServiceResponse { string name = 1; }
message ErrorResponse {
  int32 error_code = 1;
  string error_message = 2;
}
`;
const reflRoot = protobuf.parse(REFLECTION_PROTO, { keepCase: true }).root;
const ReflRequest = reflRoot.lookupType('interop.reflection.ServerReflectionRequest');
const ReflResponse = reflRoot.lookupType('interop.reflection.ServerReflectionResponse');

const V1ALPHA = '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo';
const V1 = '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo';

/* ------------------------------------------------------------------ server process */

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'filermeta-interop-'));
const portFile = path.join(tmp, 'ports');
let server = null; /* ChildProcess */
let serverExit = null; /* {code, signal} once it exited */
let serverLog = '';
let client = null;

function serverTail() {
  const lines = serverLog.trimEnd().split('\n');
  return 'filermetad output (last lines):\n' + lines.slice(-15).join('\n');
}

/* Leaves nothing behind, whatever happened: runs on every way out. */
function cleanup() {
  if (client) {
    try { client.close(); } catch (e) { /* already closed */ }
  }
  if (server && serverExit === null) {
    try { process.kill(server.pid, 'SIGKILL'); } catch (e) { /* already gone */ }
  }
  try { fs.rmSync(tmp, { recursive: true, force: true }); } catch (e) { /* best effort */ }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    failRemaining(`interrupted by ${sig}`);
    process.exit(1);
  });
}
process.on('uncaughtException', (e) => {
  failRemaining('uncaught exception: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
process.on('unhandledRejection', (e) => {
  failRemaining('unhandled rejection: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});

const watchdog = setTimeout(() => {
  failRemaining(`the test did not finish within ${WATCHDOG_MS / 1000} s\n` + serverTail());
  process.exit(1);
}, WATCHDOG_MS);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function startServer() {
  server = childProcess.spawn(FILERMETAD,
    ['-dir', path.join(tmp, 'data'), '-port', '0', '-port.grpc', '0', '--port-file', portFile],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (chunk) => {
    serverLog += chunk.toString();
    if (serverLog.length > 65536) serverLog = serverLog.slice(-32768);
  };
  server.stdout.on('data', collect);
  server.stderr.on('data', collect);
  let spawnError = null;
  server.on('error', (e) => { spawnError = e; });
  server.on('exit', (code, signal) => { serverExit = { code, signal }; });

  const until = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (spawnError) throw new Error(`cannot start ${FILERMETAD}: ${spawnError.message}`);
    if (serverExit) {
      throw new Error(`filermetad exited before listening (code ${serverExit.code}, signal ${serverExit.signal})\n` +
                      serverTail());
    }
    if (fs.existsSync(portFile)) break;
    if (Date.now() > until) throw new Error(`no port file after ${START_TIMEOUT_MS / 1000} s\n` + serverTail());
    await sleep(50);
  }
  const ports = {};
  for (const line of fs.readFileSync(portFile, 'utf8').split('\n')) {
    const m = /^(\w+)=(\d+)$/.exec(line.trim());
    if (m) ports[m[1]] = Number(m[2]);
  }
  if (!(ports.grpc > 0) || !(ports.http > 0)) {
    throw new Error('port file does not hold grpc=<port> and http=<port>: ' +
                    JSON.stringify(fs.readFileSync(portFile, 'utf8')));
  }
  return ports;
}

async function stopServer() {
  if (serverExit) throw new Error(`filermetad was already gone (code ${serverExit.code}, signal ${serverExit.signal})`);
  const t0 = Date.now();
  process.kill(server.pid, 'SIGTERM');
  while (serverExit === null && Date.now() - t0 < STOP_TIMEOUT_MS) await sleep(20);
  if (serverExit === null) throw new Error(`still running ${STOP_TIMEOUT_MS / 1000} s after SIGTERM\n` + serverTail());
  if (serverExit.code !== 0) {
    throw new Error(`exit code ${serverExit.code}, signal ${serverExit.signal}\n` + serverTail());
  }
  return Date.now() - t0;
}

/* ------------------------------------------------------------------ gRPC helpers */

const deadline = () => Date.now() + CALL_DEADLINE_MS;
const statusName = (code) => Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);

function grpcError(e) {
  if (e && typeof e.code === 'number') return `gRPC status ${e.code} (${statusName(e.code)}): ${e.details}`;
  return String(e && e.stack ? e.stack : e);
}

/*
 * One ServerReflectionInfo call on `method`: sends the requests one at a time,
 * each after the answer to the one before, then half-closes and expects the
 * call to end with status OK. Resolves to the decoded responses.
 */
function reflect(method, requests) {
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest(method,
      (obj) => Buffer.from(ReflRequest.encode(ReflRequest.fromObject(obj)).finish()),
      (buf) => ReflResponse.toObject(ReflResponse.decode(buf), { oneofs: true, defaults: true }),
      new grpc.Metadata(), { deadline: deadline() });
    const responses = [];
    let settled = false;
    const fail = (e) => {
      if (!settled) {
        settled = true;
        call.cancel();
        reject(e);
      }
    };
    const sendNext = () => {
      if (responses.length < requests.length) call.write(requests[responses.length]);
      else call.end();
    };
    call.on('data', (resp) => {
      responses.push(resp);
      if (responses.length > requests.length) fail(new Error('more responses than requests'));
      else sendNext();
    });
    call.on('error', (e) => fail(new Error(grpcError(e))));
    call.on('status', (st) => {
      if (settled) return;
      if (st.code !== grpc.status.OK) return fail(new Error(grpcError(st)));
      if (responses.length !== requests.length) {
        return fail(new Error(`call ended OK after ${responses.length} of ${requests.length} responses`));
      }
      settled = true;
      resolve(responses);
    });
    sendNext();
  });
}

async function reflectOne(method, request) {
  return (await reflect(method, [request]))[0];
}

/* The decoded FileDescriptorProtos answering file_containing_symbol `symbol`. */
async function filesFor(symbol) {
  const resp = await reflectOne(V1ALPHA, { file_containing_symbol: symbol });
  if (resp.message_response !== 'file_descriptor_response') {
    throw new Error(`expected file_descriptor_response, got ${resp.message_response}: ` + JSON.stringify(resp));
  }
  const blobs = resp.file_descriptor_response.file_descriptor_proto;
  if (blobs.length === 0) throw new Error('file_descriptor_response holds no file');
  return blobs.map((b) => descriptor.FileDescriptorProto.decode(b));
}

/* A protobufjs Root built from nothing but the server's descriptors. */
async function rootFor(symbol) {
  const files = await filesFor(symbol);
  return protobuf.Root.fromDescriptor(descriptor.FileDescriptorSet.create({ file: files }));
}

/* A unary call whose request and response types come from `root`. */
function unary(root, service, methodName, request) {
  const svc = root.lookupService(service);
  const m = svc.methods[methodName];
  if (!m) throw new Error(`reflection's ${service} has no method ${methodName}`);
  m.resolve();
  const Req = m.resolvedRequestType;
  const Resp = m.resolvedResponseType;
  const err = Req.verify(request);
  if (err) throw new Error(`bad ${Req.name}: ${err}`);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(`/${service}/${methodName}`,
      (obj) => Buffer.from(Req.encode(Req.fromObject(obj)).finish()),
      (buf) => Resp.toObject(Resp.decode(buf), { longs: String, enums: String, defaults: true }),
      request, new grpc.Metadata(), { deadline: deadline() },
      (e, resp) => (e ? reject(new Error(grpcError(e))) : resolve(resp)));
  });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function sameSet(got, want) {
  return got.length === want.length && want.every((w) => got.includes(w));
}

/* ------------------------------------------------------------------ cases */

const WANT_SERVICES = [
  'filer_pb.SeaweedFiler',
  'grpc.health.v1.Health',
  'grpc.reflection.v1alpha.ServerReflection',
  'grpc.reflection.v1.ServerReflection',
];

async function listServices(method) {
  const resp = await reflectOne(method, { list_services: '' });
  check(resp.message_response === 'list_services_response',
        `expected list_services_response, got ${resp.message_response}: ${JSON.stringify(resp)}`);
  const names = resp.list_services_response.service.map((s) => s.name);
  const missing = WANT_SERVICES.filter((s) => !names.includes(s));
  check(missing.length === 0, `missing ${missing.join(', ')}; listed: ${names.join(', ')}`);
}

const WANT_METHODS = ['Ping', 'GetFilerConfiguration', 'SubscribeMetadata', 'SubscribeLocalMetadata', 'KvGet'];
const WANT_FIELDS = {
  client_name: 1, path_prefix: 2, since_ns: 3, signature: 4, path_prefixes: 6, client_id: 7, until_ns: 8,
  client_epoch: 9, directories: 10, client_supports_batching: 11, client_supports_metadata_chunks: 12,
  client_supports_idle_heartbeat: 13,
};

async function checkFilerDescriptor() {
  const files = await filesFor('filer_pb.SeaweedFiler');
  /* grpcurl needs every import of a returned file in the same answer */
  const names = files.map((f) => f.name);
  for (const f of files) {
    for (const dep of f.dependency || []) check(names.includes(dep), `${f.name} imports ${dep}, which was not sent`);
  }
  const file = files.find((f) => f.package === 'filer_pb' && (f.service || []).some((s) => s.name === 'SeaweedFiler'));
  check(file, `no returned file declares service filer_pb.SeaweedFiler; files: ${names.join(', ')}`);
  const svc = file.service.find((s) => s.name === 'SeaweedFiler');
  const methods = svc.method.map((m) => m.name);
  const missing = WANT_METHODS.filter((m) => !methods.includes(m));
  check(missing.length === 0, `SeaweedFiler lacks ${missing.join(', ')}; has ${methods.join(', ')}`);
  const sub = svc.method.find((m) => m.name === 'SubscribeMetadata');
  check(sub.serverStreaming && !sub.clientStreaming, 'SubscribeMetadata is not server-streaming');
  check(sub.inputType === '.filer_pb.SubscribeMetadataRequest',
        `SubscribeMetadata takes ${sub.inputType}, not .filer_pb.SubscribeMetadataRequest`);
  const msg = file.messageType.find((m) => m.name === 'SubscribeMetadataRequest');
  check(msg, 'message filer_pb.SubscribeMetadataRequest is not in the file');
  const got = {};
  for (const f of msg.field) got[f.name] = f.number;
  const wrong = Object.keys(WANT_FIELDS).filter((k) => got[k] !== WANT_FIELDS[k]);
  check(wrong.length === 0, 'SubscribeMetadataRequest field numbers differ: ' +
        wrong.map((k) => `${k} want ${WANT_FIELDS[k]} got ${got[k]}`).join('; '));
}

async function checkPing(filerRoot) {
  const resp = await unary(filerRoot, 'filer_pb.SeaweedFiler', 'Ping', {});
  const start = BigInt(resp.start_time_ns);
  const stop = BigInt(resp.stop_time_ns);
  check(start > 0n, `start_time_ns is ${start}`);
  check(stop >= start, `stop_time_ns ${stop} < start_time_ns ${start}`);
}

async function checkConfiguration(filerRoot) {
  const resp = await unary(filerRoot, 'filer_pb.SeaweedFiler', 'GetFilerConfiguration', {});
  const bad = [];
  if (!resp.signature) bad.push(`signature is ${resp.signature}`);
  if (resp.dir_buckets !== '/buckets') bad.push(`dir_buckets is ${JSON.stringify(resp.dir_buckets)}`);
  if (resp.max_mb !== 4) bad.push(`max_mb is ${resp.max_mb}`);
  if (!resp.version) bad.push('version is empty');
  check(bad.length === 0, bad.join('; ') + '\nresponse: ' + JSON.stringify(resp));
}

async function checkUnknownSymbol() {
  const resp = await reflectOne(V1ALPHA, { file_containing_symbol: 'no.such.Symbol' });
  check(resp.message_response === 'error_response',
        `expected error_response, got ${resp.message_response}: ${JSON.stringify(resp)}`);
  check(resp.error_response.error_code === 5,
        `error_code ${resp.error_response.error_code} (${resp.error_response.error_message})`);
}

async function checkUnimplemented() {
  const code = await new Promise((resolve, reject) => {
    client.makeUnaryRequest('/filer_pb.SeaweedFiler/CollectionList', (x) => x, (x) => x, Buffer.alloc(0),
      new grpc.Metadata(), { deadline: deadline() },
      (e, resp) => (e ? resolve(e.code) : reject(new Error(`CollectionList succeeded: ${resp.length} bytes`))));
  });
  check(code === grpc.status.UNIMPLEMENTED, `status ${code} (${statusName(code)}), want 12 (UNIMPLEMENTED)`);
}

async function checkHealth() {
  const root = await rootFor('grpc.health.v1.Health');
  const resp = await unary(root, 'grpc.health.v1.Health', 'Check', { service: '' });
  check(resp.status === 'SERVING', `status ${JSON.stringify(resp.status)}, want SERVING (1)`);
}

/* ------------------------------------------------------------------ main */

async function runCase(fn) {
  try {
    await fn();
    report(true);
    return true;
  } catch (e) {
    report(false, e && e.message ? e.message : String(e));
    return false;
  }
}

async function main() {
  let ports;
  try {
    ports = await startServer();
  } catch (e) {
    failRemaining('filermetad did not start: ' + e.message);
    return;
  }
  client = new grpc.Client(`127.0.0.1:${ports.grpc}`, grpc.credentials.createInsecure());

  await runCase(() => listServices(V1ALPHA));
  await runCase(() => listServices(V1));
  await runCase(checkFilerDescriptor);
  let filerRoot = null;
  const getFilerRoot = async () => (filerRoot = filerRoot || (await rootFor('filer_pb.SeaweedFiler')));
  await runCase(async () => checkPing(await getFilerRoot()));
  await runCase(async () => checkConfiguration(await getFilerRoot()));
  await runCase(checkUnknownSymbol);
  await runCase(checkUnimplemented);
  await runCase(checkHealth);

  client.close();
  client = null;
  await runCase(async () => {
    const ms = await stopServer();
    diag(`filermetad stopped ${ms} ms after SIGTERM`);
  });
}

main().then(() => {
  clearTimeout(watchdog);
  if (failures > 0) diag(`${failures} of ${CASES.length} failed`);
  process.exit(failures > 0 ? 1 : 0);
});
