/* huzhu chain explorer: a small hash-routed single-page app over the node's own REST API.
 *
 * No build step and no libraries. Pages: #/ (dashboard), #/block/H, #/tx/ID, #/member/ID,
 * #/claim/N, #/settlement/P and #/search/Q. New blocks arrive over the /events WebSocket.
 * Everything shown comes from the node that served this page; the one thing the page does not
 * take on trust is a transaction's inclusion: it re-hashes the block header and checks the
 * RFC 9162 Merkle proof of the transaction id against the header's tx_root with WebCrypto.
 * Text from the chain is only ever put into the page as text nodes, never as HTML.
 */
(() => {
  'use strict';

  // --- limits (units last) -----------------------------------------------------------------
  const DASHBOARD_BLOCKS = 15;          // rows in the latest-blocks table
  const KNOWN_BLOCKS_MAX = 64;         // block summaries kept in memory
  const STATUS_REFRESH_MS = 2000;      // dashboard status poll
  const HEADER_FETCH_DELAY_MS = 300;   // batch header fetches after a burst of block events
  const HEADER_FETCHES_MAX = 6;        // headers fetched per batch
  const RATE_WINDOW_BLOCKS = 20;       // committed tx/s over at most this many blocks
  const IDLE_AFTER_MS = 30000;         // no block for this long: the rate shows 0
  const RECONNECT_MIN_MS = 1000;
  const RECONNECT_MAX_MS = 15000;
  const PENDING_TX_REFRESH_MS = 1500;  // a pending transaction's page re-checks this often

  const view = document.getElementById('view');
  const liveBadge = document.getElementById('live');

  const state = {
    genesis: null,
    status: null,
    blocks: new Map(),   // height -> {height, hash, txCount, time, proposer, view, signers}
    latest: 0,
    fresh: new Set(),    // heights that arrived live since the last render
    live: false,
    routeToken: 0,
    timers: [],
    onBlock: null,       // what the current page does when a block arrives
    headerTimer: null,
  };

  // --- small helpers -----------------------------------------------------------------------

  /** h('a', {href: '#/'}, 'text', child...): an element; strings become text nodes. */
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const isHex = (text, bytes) => typeof text === 'string' &&
    new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(text);

  function shortHex(hex, keep = 10) {
    if (typeof hex !== 'string') return '—';
    return hex.length > keep + 2 ? `${hex.slice(0, keep)}…` : hex;
  }

  function hashSpan(hex, keep = 16) {
    return h('span', {class: 'hash short', title: hex}, shortHex(hex, keep));
  }

  function fullHash(hex) {
    return h('span', {class: 'hash'}, hex === null || hex === undefined ? '—' : hex);
  }

  function formatInt(value) {
    return typeof value === 'number' ? value.toLocaleString('en-US') : String(value);
  }

  /** Integer fen as yuan, exactly (no floating point on the amount). */
  function formatFen(fen) {
    if (typeof fen !== 'number' || !Number.isInteger(fen)) return String(fen);
    const sign = fen < 0 ? '-' : '';
    const abs = Math.abs(fen);
    const yuan = Math.floor(abs / 100).toLocaleString('en-US');
    const cents = String(abs % 100).padStart(2, '0');
    return `${sign}¥${yuan}.${cents}`;
  }

  function formatTime(ms) {
    if (typeof ms !== 'number') return '—';
    const date = new Date(ms);
    if (Number.isNaN(date.getTime())) return String(ms);
    return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  function ago(ms) {
    if (typeof ms !== 'number') return '';
    const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (seconds < 60) return `${seconds}s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
    return `${Math.floor(seconds / 86400)}d ago`;
  }

  const link = (href, ...children) => h('a', {href}, ...children);
  const blockLink = (height) => link(`#/block/${height}`, formatInt(height));
  const txLink = (txId, keep = 16) =>
    h('a', {href: `#/tx/${txId}`, class: 'hash short', title: txId}, shortHex(txId, keep));
  const memberLink = (memberId) =>
    h('a', {href: `#/member/${memberId}`, class: 'hash short', title: memberId},
      shortHex(memberId, 12));
  const claimLink = (claimId) => link(`#/claim/${claimId}`, `#${claimId}`);
  const settlementLink = (period) => link(`#/settlement/${period}`, `period ${period}`);

  function badge(text, kind) {
    return h('span', {class: `badge ${kind || ''}`}, text);
  }

  const STATUS_KINDS = {
    active: 'ok', committed: 'ok', paid: 'ok', approved: 'ok', ok: 'ok', applied: 'ok',
    notice: 'info', submitted: 'info', jury: 'warn', pending: 'warn', rejected: 'bad',
    closed: 'bad', unknown: 'bad', failed: 'bad', pay: 'ok', reject: 'bad',
  };
  const statusBadge = (text) => badge(text, STATUS_KINDS[text] || '');

  function validatorName(id, withId = true) {
    const validators = (state.genesis && state.genesis.validators) || [];
    const entry = validators.find((item) => item.id === id);
    if (!entry) return `#${id}`;
    return withId ? `${entry.name} (#${id})` : entry.name;
  }

  function card(title, ...children) {
    return h('section', {class: 'card'}, title ? h('h2', {}, title) : null, ...children);
  }

  function table(headers, rows, attrs) {
    return h('div', {class: 'table-wrap'},
      h('table', attrs || {},
        h('thead', {}, h('tr', {}, headers.map((header) =>
          typeof header === 'string' ? h('th', {}, header)
            : h('th', {class: header.class}, header.text)))),
        h('tbody', {}, rows)));
  }

  /** A key/value table; values are formatted by what their key says they are. */
  function kvTable(entries, attrs) {
    return h('div', {class: 'table-wrap'}, h('table', Object.assign({class: 'kv'}, attrs || {}),
      h('tbody', {}, entries.filter(Boolean).map(([key, value, id]) =>
        h('tr', {}, h('th', {}, key), h('td', id ? {id} : {}, value))))));
  }

  /** A value from a plan view, shown by its field name's meaning. */
  function fieldValue(key, value) {
    if (value === null || value === undefined) return h('span', {class: 'muted'}, '—');
    if (typeof value === 'boolean') return value ? 'yes' : 'no';
    if ((key === 'member_id') && isHex(value, 16)) return memberLink(value);
    if ((key === 'claim_id' || key === 'open_claim') && Number.isInteger(value)) {
      return claimLink(value);
    }
    if (key === 'claims' && Array.isArray(value)) {
      return value.length ? value.map((id, index) => [index ? ', ' : '', claimLink(id)])
        : h('span', {class: 'muted'}, 'none');
    }
    if (key === 'period' && Number.isInteger(value)) return settlementLink(value);
    if ((key === 'tx_id' || key.endsWith('_tx')) && isHex(value, 32)) return txLink(value);
    if (key.endsWith('_fen') && typeof value === 'number') return formatFen(value);
    if ((key === 'birth_ms' || key === 'age_out_ms') && typeof value === 'number') {
      return formatTime(value).slice(0, 10);  // a date: the time of day means nothing here
    }
    if (key.endsWith('_ms') && typeof value === 'number') return formatTime(value);
    if (key === 'status' && typeof value === 'string') return statusBadge(value);
    if ((key === 'outcome' || key === 'decision') && typeof value === 'string') {
      return value.replace(/_/g, ' ');
    }
    if (typeof value === 'string' && /^[0-9a-f]{40,}$/.test(value)) return fullHash(value);
    if (typeof value === 'number') return formatInt(value);
    if (typeof value === 'object') return h('pre', {class: 'json'}, JSON.stringify(value, null, 2));
    return String(value);
  }

  /** A field name as a label: units are shown in the value, not the name. */
  const fieldLabel = (key) => key.replace(/_(ms|fen)$/, '').replace(/_/g, ' ');

  function fieldsTable(object, keys, shown, attrs) {
    return kvTable(keys.filter((key) => key in object)
      .map((key) => [fieldLabel(key),
        shown && key in shown ? shown[key] : fieldValue(key, object[key])]), attrs);
  }

  function hexToBytes(hex) {
    const bytes = new Uint8Array(hex.length / 2);
    for (let i = 0; i < bytes.length; i += 1) bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
    return bytes;
  }

  function bytesToHex(bytes) {
    return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  }

  // --- the node's API ----------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path) {
    let response;
    try {
      response = await fetch(path, {headers: {Accept: 'application/json'}, cache: 'no-store'});
    } catch (error) {
      throw new ApiError(0, 'unreachable', 'the node does not answer');
    }
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && body.error ? body.error : {};
      throw new ApiError(response.status, detail.code || `http_${response.status}`,
        detail.message || response.statusText);
    }
    return body;
  }

  async function loadGenesis() {
    if (!state.genesis) state.genesis = await api('/genesis');
    return state.genesis;
  }

  const isPlan = () => Boolean(state.genesis && state.genesis.app &&
    state.genesis.app.name === 'plan');

  // --- verification in the browser (WebCrypto SHA-256) -------------------------------------

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((size, part) => size + part.length, 0));
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }

  const LEAF_PREFIX = Uint8Array.of(0x00);
  const NODE_PREFIX = Uint8Array.of(0x01);
  const leafHash = (leaf) => sha256(concat(LEAF_PREFIX, leaf));
  const nodeHash = (left, right) => sha256(concat(NODE_PREFIX, left, right));

  const equalBytes = (a, b) => a.length === b.length && a.every((byte, i) => byte === b[i]);

  /** RFC 9162 section 2.1.3.2: does `path` place the entry `leaf` at `index` of a tree of
   * `size` leaves with root `root`? (Leaf hash H(0x00 || entry), node hash H(0x01 || l || r).)
   * Sizes are block transaction counts, far below 2^31, so bit operations are exact. */
  async function verifyInclusion(leaf, index, size, path, root) {
    if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size) {
      return false;
    }
    let fn = index;
    let sn = size - 1;
    let r = await leafHash(leaf);
    for (const p of path) {
      if (sn === 0) return false;
      if ((fn & 1) === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1) === 0 && fn !== 0) {
          fn >>= 1;
          sn >>= 1;
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1;
      sn >>= 1;
    }
    return sn === 0 && equalBytes(r, root);
  }

  // The canonical encoding of a block header (msgpack, keys sorted, smallest integer forms),
  // enough of it to re-derive a block hash: ints, one string, 32-byte hashes.
  const HEADER_BYTES_FIELDS = new Set(['app_hash', 'prev_hash', 'results_hash', 'tx_root']);

  function msgpackUint(value) {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error('unsupported integer');
    if (value < 0x80) return Uint8Array.of(value);
    if (value < 0x100) return Uint8Array.of(0xcc, value);
    if (value < 0x10000) return Uint8Array.of(0xcd, value >> 8, value & 0xff);
    const out = new Uint8Array(value < 0x100000000 ? 5 : 9);
    const view32 = new DataView(out.buffer);
    if (value < 0x100000000) {
      out[0] = 0xce;
      view32.setUint32(1, value);
    } else {
      out[0] = 0xcf;
      view32.setUint32(1, Math.floor(value / 0x100000000));
      view32.setUint32(5, value % 0x100000000);
    }
    return out;
  }

  function msgpackStr(text) {
    const bytes = new TextEncoder().encode(text);
    if (bytes.length < 32) return concat(Uint8Array.of(0xa0 | bytes.length), bytes);
    if (bytes.length < 256) return concat(Uint8Array.of(0xd9, bytes.length), bytes);
    throw new Error('string too long for a header');
  }

  function msgpackBin(bytes) {
    if (bytes.length < 256) return concat(Uint8Array.of(0xc4, bytes.length), bytes);
    throw new Error('bytes too long for a header');
  }

  function encodeHeader(header) {
    const keys = Object.keys(header).sort();
    if (keys.length >= 16) throw new Error('unexpected header fields');
    const parts = [Uint8Array.of(0x80 | keys.length)];
    for (const key of keys) {
      const value = header[key];
      parts.push(msgpackStr(key));
      if (HEADER_BYTES_FIELDS.has(key)) parts.push(msgpackBin(hexToBytes(value)));
      else if (typeof value === 'string') parts.push(msgpackStr(value));
      else parts.push(msgpackUint(value));
    }
    return concat(...parts);
  }

  async function headerHash(header) {
    return bytesToHex(await sha256(encodeHeader(header)));
  }

  // --- live blocks over /events ------------------------------------------------------------

  let reconnectMs = RECONNECT_MIN_MS;

  function setLive(live) {
    state.live = live;
    liveBadge.textContent = live ? 'live' : 'reconnecting';
    liveBadge.className = `live ${live ? 'on' : 'off'}`;
  }

  function connectEvents() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/events`);
    socket.addEventListener('open', () => {
      reconnectMs = RECONNECT_MIN_MS;
      setLive(true);
    });
    socket.addEventListener('message', (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (event && event.type === 'block' && Number.isInteger(event.height)) onBlockEvent(event);
    });
    socket.addEventListener('close', () => {
      setLive(false);
      setTimeout(connectEvents, reconnectMs);
      reconnectMs = Math.min(reconnectMs * 2, RECONNECT_MAX_MS);
    });
  }

  function rememberBlock(summary) {
    const known = state.blocks.get(summary.height) || {};
    state.blocks.set(summary.height, Object.assign(known, summary));
    state.latest = Math.max(state.latest, summary.height);
    if (state.blocks.size > KNOWN_BLOCKS_MAX) {
      const heights = Array.from(state.blocks.keys()).sort((a, b) => a - b);
      for (const height of heights.slice(0, state.blocks.size - KNOWN_BLOCKS_MAX)) {
        state.blocks.delete(height);
      }
    }
  }

  function summaryFromBlock(body) {
    const header = body.header;
    return {
      height: body.height, hash: body.block_hash, txCount: header.tx_count,
      time: header.timestamp_ms, proposer: header.proposer, view: header.view,
      signers: body.certificate ? body.certificate.signers : null,
    };
  }

  function onBlockEvent(event) {
    rememberBlock({height: event.height, hash: event.block_hash, txCount: event.tx_ids.length});
    state.fresh.add(event.height);
    scheduleHeaderFetch();
    if (state.onBlock) state.onBlock(event);
  }

  /** Block events carry no header; fetch the newest missing ones, a few at a time. */
  function scheduleHeaderFetch() {
    if (state.headerTimer) return;
    state.headerTimer = setTimeout(async () => {
      state.headerTimer = null;
      const missing = Array.from(state.blocks.values())
        .filter((block) => block.time === undefined)
        .map((block) => block.height)
        .sort((a, b) => b - a)
        .slice(0, HEADER_FETCHES_MAX);
      await Promise.all(missing.map(fetchBlockSummary));
      if (state.onBlock) state.onBlock(null);
    }, HEADER_FETCH_DELAY_MS);
  }

  async function fetchBlockSummary(height) {
    try {
      rememberBlock(summaryFromBlock(await api(`/blocks/${height}`)));
    } catch (error) {
      state.blocks.delete(height);  // pruned or not yet readable: forget it
    }
  }

  /** Committed transactions per second over the latest blocks whose time is known. */
  function txRate() {
    const blocks = Array.from(state.blocks.values())
      .filter((block) => typeof block.time === 'number')
      .sort((a, b) => b.height - a.height)
      .slice(0, RATE_WINDOW_BLOCKS);
    if (blocks.length < 2) return null;
    const newest = blocks[0];
    const oldest = blocks[blocks.length - 1];
    if (Date.now() - newest.time > IDLE_AFTER_MS) return 0;
    const spanMs = newest.time - oldest.time;
    if (spanMs <= 0) return null;
    const txs = blocks.slice(0, -1).reduce((sum, block) => sum + (block.txCount || 0), 0);
    return (txs * 1000) / spanMs;
  }

  // --- routing -----------------------------------------------------------------------------

  const routes = [
    [/^\/?$/, renderDashboard],
    [/^\/block\/(\d{1,19}|latest)$/, renderBlock],
    [/^\/tx\/([0-9a-fA-F]{64})$/, renderTx],
    [/^\/member\/([0-9a-fA-F]{32})$/, renderMember],
    [/^\/claim\/(\d{1,19})$/, renderClaim],
    [/^\/settlement\/(\d{1,19})$/, renderSettlement],
    [/^\/search\/(.*)$/, renderSearch],
  ];

  function clearTimers() {
    for (const timer of state.timers) clearInterval(timer);
    state.timers = [];
    state.onBlock = null;
  }

  function every(ms, callback) {
    state.timers.push(setInterval(callback, ms));
  }

  /** Show `nodes` as the page, unless the user has moved on since `token` was taken. */
  function show(token, title, ...nodes) {
    if (token !== state.routeToken) return false;
    document.title = title ? `${title} · huzhu explorer` : 'huzhu explorer';
    view.replaceChildren(...nodes.flat().filter(Boolean));
    return true;
  }

  function showError(token, error) {
    const notFound = error instanceof ApiError && error.status === 404;
    show(token, notFound ? 'Not found' : 'Error',
      h('h1', {}, notFound ? 'Not found' : 'Something went wrong'),
      h('p', {class: 'error-box', id: 'error'}, error.message || String(error)),
      h('p', {}, link('#/', '← back to the dashboard')));
  }

  async function route() {
    clearTimers();
    state.routeToken += 1;
    const token = state.routeToken;
    let path;
    try {
      path = decodeURIComponent(location.hash.replace(/^#/, ''));
    } catch (error) {
      path = '';
    }
    for (const [pattern, render] of routes) {
      const match = path.match(pattern);
      if (match) {
        try {
          await loadGenesis();
          await render(token, ...match.slice(1));
        } catch (error) {
          showError(token, error);
        }
        window.scrollTo(0, 0);
        return;
      }
    }
    showError(token, new ApiError(404, 'not_found', `no page ${path}`));
  }

  // --- dashboard ---------------------------------------------------------------------------

  function statBox(label, id, value, note) {
    return h('div', {class: 'stat'},
      h('div', {class: 'stat-label'}, label),
      h('div', {class: 'stat-value', id}, value),
      h('div', {class: 'stat-note', id: `${id}-note`}, note || '\u00a0'));
  }

  function setText(id, text) {
    const node = document.getElementById(id);
    if (node) node.textContent = text;
  }

  async function renderDashboard(token) {
    const status = await api('/status');
    state.status = status;
    state.latest = Math.max(state.latest, status.height);
    const wanted = [];
    for (let height = status.height; height >= 1 && wanted.length < DASHBOARD_BLOCKS;
      height -= 1) {
      const known = state.blocks.get(height);
      if (!known || known.time === undefined) wanted.push(height);
    }
    await Promise.all(wanted.map(fetchBlockSummary));
    const totals = isPlan() ? await planTotals() : null;

    const stats = h('div', {class: 'stats'},
      statBox('Height', 'stat-height', formatInt(state.latest)),
      statBox('View', 'stat-view', formatInt(status.view)),
      statBox('Primary', 'stat-primary', validatorName(status.primary)),
      statBox('Committed tx/s', 'stat-rate', '—'),
      statBox('Mempool', 'stat-mempool', formatInt(status.mempool_txs), 'transactions waiting'),
      statBox('Peers', 'stat-peers', `${status.peers_connected}/${status.peers.length}`));
    const validators = card('Validators', h('div', {id: 'validators'}));
    const blocks = card('Latest blocks', h('div', {id: 'blocks'}));
    const plan = totals ? card('Mutual-aid plan', h('div', {id: 'plan'})) : null;
    if (!show(token, 'Dashboard', h('h1', {}, `Chain ${status.chain_id}`), stats,
      h('div', {class: 'columns'}, h('div', {}, blocks), h('div', {}, validators, plan)))) {
      return;
    }
    updateDashboard(status, totals);

    state.onBlock = () => {
      setText('stat-height', formatInt(state.latest));
      renderBlocksTable();
      updateRate();
    };
    every(STATUS_REFRESH_MS, async () => {
      try {
        const fresh = await api('/status');
        const freshTotals = isPlan() ? await planTotals() : null;
        if (token === state.routeToken) updateDashboard(fresh, freshTotals);
      } catch (error) {
        setText('stat-height-note', 'node not answering');
      }
    });
  }

  async function planTotals() {
    try {
      return (await api('/state/plan/totals')).value;
    } catch (error) {
      return null;
    }
  }

  function updateDashboard(status, totals) {
    state.status = status;
    state.latest = Math.max(state.latest, status.height);
    setText('stat-height', formatInt(state.latest));
    setText('stat-height-note', status.ready ? 'ready' : 'not ready');
    setText('stat-view', formatInt(status.view));
    setText('stat-view-note', status.core && status.core.view_changing ? 'changing view' : '\u00a0');
    setText('stat-primary', validatorName(status.primary));
    setText('stat-mempool', formatInt(status.mempool_txs));
    setText('stat-peers', `${status.peers_connected}/${status.peers.length}`);
    setText('stat-peers-note', `this node: ${validatorName(status.node_id)}`);
    renderBlocksTable();
    renderValidators(status);
    updateRate();
    if (totals) renderPlan(totals);
  }

  function updateRate() {
    const rate = txRate();
    setText('stat-rate', rate === null ? '—' : rate.toFixed(rate < 10 ? 1 : 0));
    setText('stat-rate-note', `over the last ${RATE_WINDOW_BLOCKS} blocks`);
  }

  function renderBlocksTable() {
    const container = document.getElementById('blocks');
    if (!container) return;
    const rows = Array.from(state.blocks.values())
      .sort((a, b) => b.height - a.height)
      .slice(0, DASHBOARD_BLOCKS)
      .map((block) => h('tr', {class: state.fresh.has(block.height) ? 'fresh' : null,
        'data-height': block.height},
        h('td', {class: 'num'}, blockLink(block.height)),
        h('td', {class: 'small nowrap'}, block.time === undefined ? '…' : ago(block.time)),
        h('td', {class: 'num'}, formatInt(block.txCount)),
        h('td', {class: 'small'}, block.proposer === undefined ? '…'
          : validatorName(block.proposer, false)),
        h('td', {class: 'wide-only'}, hashSpan(block.hash, 12))));
    state.fresh.clear();
    container.replaceChildren(rows.length
      ? table(['Height', 'Time', {text: 'Txs', class: 'num'}, 'Proposer',
        {text: 'Hash', class: 'wide-only'}], rows, {id: 'blocks-table'})
      : h('p', {class: 'muted'}, 'No blocks yet: submit a transaction.'));
  }

  function renderValidators(status) {
    const container = document.getElementById('validators');
    if (!container) return;
    const peers = new Map(status.peers.map((peer) => [peer.id, peer]));
    const latest = state.blocks.get(state.latest);
    const signers = latest && latest.signers ? new Set(latest.signers) : null;
    const rows = state.genesis.validators.map((validator) => {
      let link;
      if (validator.id === status.node_id) link = badge('this node', 'info');
      else if (peers.has(validator.id)) {
        link = peers.get(validator.id).connected ? badge('connected', 'ok')
          : badge('disconnected', 'bad');
      } else link = badge('not a peer', '');
      let signed = h('span', {class: 'muted'}, '—');
      if (signers) {
        signed = signers.has(validator.id) ? badge('signed', 'ok')
          : h('span', {class: 'muted small'}, 'not in it');
      }
      return h('tr', {'data-validator': validator.id},
        h('td', {}, `${validator.name}`, validator.id === status.primary
          ? [' ', badge('primary', 'info')] : null),
        h('td', {class: 'small wide-only'}, validator.org || ''),
        h('td', {}, link),
        h('td', {}, signed),
        h('td', {class: 'wide-only'}, hashSpan(validator.public_key, 10)));
    });
    container.replaceChildren(table(['Validator', {text: 'Org', class: 'wide-only'}, 'Link',
      'Latest commit', {text: 'Key', class: 'wide-only'}], rows, {id: 'validators-table'}));
  }

  function renderPlan(totals) {
    const container = document.getElementById('plan');
    if (!container) return;
    const settled = Math.max(0, (totals.next_period || 1) - 1);
    container.replaceChildren(kvTable([
      ['Active members', formatInt(totals.active_members)],
      ['Members ever enrolled', formatInt(totals.enrolled_total)],
      ['Claims submitted', formatInt(totals.claims_total)],
      ['Latest claim', totals.claims_total ? claimLink(totals.claims_total) : '—'],
      ['Settlements', settled ? [formatInt(settled), ' · latest ', settlementLink(settled)]
        : 'none yet'],
      ['Paid out', formatFen(totals.payouts_fen)],
      ['Pending payouts', formatFen(totals.pending_payouts_fen)],
      ['Conservation', totals.conservation_holds ? badge('holds', 'ok') : badge('BROKEN', 'bad')],
    ]));
  }

  // --- block -------------------------------------------------------------------------------

  async function renderBlock(token, which) {
    const block = await api(`/blocks/${which}?full=true`);
    const header = block.header;
    const height = block.height;
    const certificate = block.certificate;
    const validators = state.genesis.validators;
    const quorum = validators.length - Math.floor((validators.length - 1) / 3);

    const headerCard = card('Header', kvTable([
      ['Height', formatInt(height)],
      ['Block hash', fullHash(block.block_hash)],
      ['Hash check', h('span', {id: 'header-check', class: 'muted'}, 'checking…')],
      ['Time', `${formatTime(header.timestamp_ms)} (${ago(header.timestamp_ms)})`],
      ['Proposer', validatorName(header.proposer)],
      ['View', formatInt(header.view)],
      ['Previous block', height > 1 ? link(`#/block/${height - 1}`, fullHash(header.prev_hash))
        : [fullHash(header.prev_hash), ' (genesis)']],
      ['Transactions', formatInt(header.tx_count)],
      ['Tx root', fullHash(header.tx_root)],
      ['App hash', fullHash(header.app_hash)],
      ['Results hash', fullHash(header.results_hash)],
      ['Chain', header.chain_id],
    ], {id: 'block-header'}));

    const receipts = block.receipts || [];
    const txRows = (block.txs || []).map((tx, index) => {
      const receipt = receipts[index];
      return h('tr', {},
        h('td', {class: 'num'}, String(index)),
        h('td', {}, txLink(tx.tx_id, 14)),
        h('td', {}, tx.kind),
        h('td', {}, hashSpan(tx.sender, 10)),
        h('td', {class: 'num'}, formatInt(tx.nonce)),
        h('td', {}, receipt ? statusBadge(receipt.ok ? 'ok' : receipt.code) : '—'));
    });
    const txCard = card(`Transactions (${txRows.length})`, txRows.length
      ? table(['#', 'Tx id', 'Kind', 'Sender', {text: 'Nonce', class: 'num'}, 'Result'], txRows,
        {id: 'block-txs'})
      : h('p', {class: 'muted'}, 'An empty block.'));

    let certCard;
    if (certificate) {
      const signed = new Set(certificate.signers);
      const signerRows = certificate.signatures.map((entry) => h('tr', {},
        h('td', {}, validatorName(entry.replica)),
        h('td', {}, hashSpan(entry.signature, 20))));
      const missing = validators.filter((validator) => !signed.has(validator.id));
      certCard = card('Commit certificate', kvTable([
        ['Signers', [`${signed.size} of ${validators.length} (quorum ${quorum}) `,
          signed.size >= quorum ? badge('quorum', 'ok') : badge('below quorum', 'bad')]],
        ['View', formatInt(certificate.view)],
        ['Certified hash', [fullHash(certificate.block_hash), ' ',
          certificate.block_hash === block.block_hash ? badge('matches the block', 'ok')
            : badge('differs from the block', 'bad')]],
        ['Did not sign', missing.length ? missing.map((v) => validatorName(v.id)).join(', ')
          : 'none'],
      ]), table(['Signer', 'Signature'], signerRows, {id: 'certificate-signers'}));
    } else {
      certCard = card('Commit certificate', h('p', {class: 'muted'}, 'No certificate stored.'));
    }

    const nav = h('div', {class: 'nav-row'},
      height > 1 ? link(`#/block/${height - 1}`, `← block ${height - 1}`) : h('span'),
      link(`#/block/${height + 1}`, `block ${height + 1} →`));
    if (!show(token, `Block ${height}`, h('h1', {}, `Block ${formatInt(height)}`), nav,
      h('div', {class: 'columns'}, h('div', {}, headerCard), h('div', {}, certCard)), txCard)) {
      return;
    }
    checkHeaderHash(header, block.block_hash, document.getElementById('header-check'));
  }

  async function checkHeaderHash(header, blockHash, node) {
    if (!node) return;
    if (!window.crypto || !crypto.subtle) {
      node.textContent = 'cannot check: WebCrypto needs https or localhost';
      return;
    }
    try {
      const ok = (await headerHash(header)) === blockHash;
      node.replaceChildren(ok ? badge('SHA-256 of the header matches', 'ok')
        : badge('header does not hash to the block hash', 'bad'));
    } catch (error) {
      node.textContent = `cannot check: ${error.message}`;
    }
  }

  // --- transaction -------------------------------------------------------------------------

  async function renderTx(token, txIdText) {
    const txId = txIdText.toLowerCase();
    const answer = await api(`/txs/${txId}`);
    if (answer.status !== 'committed') {
      const pending = answer.status === 'pending';
      show(token, 'Transaction', h('h1', {}, 'Transaction'),
        card(null, kvTable([
          ['Tx id', fullHash(txId)],
          ['Status', statusBadge(answer.status), 'tx-status'],
        ]), h('p', {class: 'muted'}, pending
          ? 'Waiting in this node\'s mempool; this page updates when it is committed.'
          : 'This node has not seen this transaction.')));
      if (pending) {
        every(PENDING_TX_REFRESH_MS, async () => {
          const again = await api(`/txs/${txId}`).catch(() => null);
          if (again && again.status === 'committed' && token === state.routeToken) route();
        });
      }
      return;
    }
    const block = await api(`/blocks/${answer.height}?full=true`);
    const tx = (block.txs || [])[answer.index];
    const receipt = answer.receipt;
    const proof = answer.proof;

    const summary = card('Receipt', kvTable([
      ['Tx id', fullHash(txId)],
      ['Status', statusBadge('committed'), 'tx-status'],
      ['Result', receipt ? statusBadge(receipt.ok ? 'ok' : receipt.code) : '—', 'tx-result'],
      ['Block', [blockLink(answer.height), ` · position ${answer.index} · `,
        hashSpan(answer.block_hash, 16)]],
      ['Block time', formatTime(block.header.timestamp_ms)],
      ['Certificate', answer.certificate
        ? `${answer.certificate.signers.length} signers: ` +
          answer.certificate.signers.map((id) => validatorName(id)).join(', ')
        : 'none'],
      receipt && receipt.result && Object.keys(receipt.result).length
        ? ['Output', resultView(receipt.result)] : null,
    ]));

    const txCard = tx ? card('Transaction', kvTable([
      ['Kind', tx.kind],
      ['Sender', fullHash(tx.sender)],
      ['Nonce', formatInt(tx.nonce)],
      ['Chain', tx.chain_id],
      ['Body', resultView(tx.body)],
      ['Signature', fullHash(tx.signature)],
    ])) : null;

    const proofCard = card('Inclusion proof',
      h('div', {id: 'proof-status', class: 'proof checking'}, 'Checking the proof…'),
      kvTable([
        ['Leaf (tx id)', fullHash(txId)],
        ['Index / size', `${proof.index} of ${proof.size}`],
        ['Tx root (proof)', fullHash(proof.tx_root)],
        ['Tx root (block header)', fullHash(block.header.tx_root)],
        ['Audit path', proof.path.length
          ? h('ol', {class: 'timeline'}, proof.path.map((node) => h('li', {}, fullHash(node))))
          : h('span', {class: 'muted'}, 'empty (the only transaction in its block)')],
      ]),
      h('p', {class: 'muted small'}, 'Checked in this browser with WebCrypto SHA-256 as in ' +
        'RFC 9162: leaf hash H(0x00 ‖ tx id), node hash H(0x01 ‖ left ‖ right), against the ' +
        'tx root of the block header, whose own SHA-256 must be the certified block hash.'));

    if (!show(token, 'Transaction', h('h1', {}, 'Transaction'),
      h('div', {class: 'columns'}, h('div', {}, summary, txCard), h('div', {}, proofCard)))) {
      return;
    }
    await checkProof(txId, answer, block, document.getElementById('proof-status'));
  }

  function resultView(value) {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      return kvTable(Object.keys(value).map((key) => [fieldLabel(key),
        fieldValue(key, value[key])]));
    }
    return fieldValue('', value);
  }

  async function checkProof(txId, answer, block, node) {
    if (!node) return;
    const fail = (why) => {
      node.className = 'proof failed';
      node.textContent = `✗ Not verified: ${why}`;
    };
    if (!window.crypto || !crypto.subtle) {
      fail('WebCrypto is only available on https or localhost pages');
      return;
    }
    try {
      const proof = answer.proof;
      const header = block.header;
      if (proof.tx_root !== header.tx_root) return fail('the proof names another tx root');
      if (proof.size !== header.tx_count) return fail('the proof size is not the block\'s tx count');
      if ((await headerHash(header)) !== block.block_hash) {
        return fail('the block header does not hash to the block hash');
      }
      if (answer.certificate && answer.certificate.block_hash !== block.block_hash) {
        return fail('the commit certificate is for another block');
      }
      if (!proof.path.every((item) => isHex(item, 32))) return fail('malformed audit path');
      const ok = await verifyInclusion(hexToBytes(txId), proof.index, proof.size,
        proof.path.map(hexToBytes), hexToBytes(header.tx_root));
      if (!ok) return fail('the audit path does not lead to the tx root');
      node.className = 'proof verified';
      node.textContent = `✓ Verified: transaction ${proof.index} of ${proof.size} in block ` +
        `${answer.height}, whose header hashes to the certified block hash`;
    } catch (error) {
      fail(error.message || String(error));
    }
    return undefined;
  }

  // --- plan pages --------------------------------------------------------------------------

  function needPlan() {
    if (!isPlan()) throw new ApiError(404, 'not_found', 'this chain does not run the mutual-aid plan');
  }

  const MEMBER_FIELDS = ['member_id', 'status', 'public_key', 'identity', 'enrolled_ms',
    'birth_ms', 'age_out_ms', 'tier_cap_fen', 'deposits_fen', 'owed_fen', 'balance_fen',
    'arrears_fen', 'arrears_since_ms', 'grace_due_ms', 'juror_since_ms', 'open_claim',
    'claims', 'end_ms'];

  async function renderMember(token, memberIdText) {
    needPlan();
    const memberId = memberIdText.toLowerCase();
    const member = (await api(`/members/${memberId}`)).value;
    const rest = Object.keys(member).filter((key) => !MEMBER_FIELDS.includes(key));
    show(token, 'Member', h('h1', {}, 'Member ', h('span', {class: 'hash'}, shortHex(memberId, 12))),
      h('div', {class: 'columns'},
        h('div', {}, card('Membership', fieldsTable(member, MEMBER_FIELDS,
          {member_id: fullHash(member.member_id)}))),
        h('div', {}, card('Other fields', fieldsTable(member, rest)))));
  }

  const CLAIM_FIELDS = ['claim_id', 'status', 'outcome', 'member_id', 'condition',
    'diagnosis_ms', 'requested_fen', 'approved_fen', 'paid_net_fen', 'arrears_deducted_fen',
    'submitted_ms', 'submit_tx', 'evidence_root', 'notice_end_ms', 'appeal_end_ms', 'appealed',
    'final_ms', 'period'];

  async function renderClaim(token, claimId) {
    needPlan();
    const claim = (await api(`/claims/${claimId}`)).value;
    const jury = claim.jury ? (await api(`/jury/${claimId}`)).value : null;

    const evidence = card(`Evidence (${claim.evidence.length} anchor${claim.evidence.length === 1 ? '' : 's'})`,
      claim.evidence.length ? claim.evidence.map((anchor) => h('div', {class: 'anchor'},
        h('h3', {}, `Anchor ${anchor.number}`),
        kvTable([
          ['Anchored by', [txLink(anchor.tx_id), ' in block ', blockLink(anchor.height), ', ',
            formatTime(anchor.time_ms)]],
          ['Signer', hashSpan(anchor.signer, 12)],
          ['Documents root', fullHash(anchor.root)],
        ]),
        table(['Kind', 'Document digest (SHA-256)'], anchor.digests.map((digest, index) =>
          h('tr', {}, h('td', {}, anchor.kinds[index] || ''), h('td', {}, fullHash(digest)))),
        {class: 'evidence-digests'})))
        : h('p', {class: 'muted'}, 'No evidence anchored.'));

    const review = claim.review;
    const reviewCard = card('Review', review ? kvTable([
      ['Decision', statusBadge(review.decision === 'approve' ? 'approved' : 'rejected'),
        'claim-review'],
      ['Amount', formatFen(review.amount_fen)],
      ['Reason', review.reason || '—'],
      ['Reviewer', hashSpan(review.reviewer, 12)],
      ['Time', formatTime(review.time_ms)],
    ]) : h('p', {class: 'muted', id: 'claim-review'}, 'Not reviewed yet.'));

    const objections = card(`Objections (${claim.objections.length})`, claim.objections.length
      ? table(['Member', 'Reason', 'Evidence digest', 'Time'], claim.objections.map((item) =>
        h('tr', {}, h('td', {}, memberLink(item.member_id)), h('td', {}, item.reason),
          h('td', {}, fullHash(item.evidence_digest)), h('td', {class: 'small'},
            formatTime(item.time_ms)))), {id: 'claim-objections'})
      : h('p', {class: 'muted', id: 'claim-objections'}, 'No objections.'));

    // One document backing two claims is what the reviewer and objectors must see first.
    const reused = claim.reused_documents || [];
    const reusedCard = reused.length ? card(
      `Documents also anchored for other claims (${claim.reused_documents_total})`,
      table(['Notice', 'Claim', 'Document digest'], reused.map((item) => h('tr', {},
        h('td', {}, item.notice), h('td', {}, claimLink(item.claim_id)),
        h('td', {}, fullHash(item.digest)))),
      {id: 'claim-reused'})) : null;

    let juryCard = null;
    if (jury) {
      const seats = jury.seats || [];
      const pay = seats.filter((seat) => seat.vote === 'pay').length;
      const reject = seats.filter((seat) => seat.vote === 'reject').length;
      juryCard = card(`Jury (round ${jury.round}, ${jury.origin})`, kvTable([
        ['Outcome', jury.outcome ? badge(jury.outcome.replace(/_/g, ' ').replace(/:/g, ' · '),
          jury.outcome.startsWith('pay') ? 'ok' : 'bad') : badge('deciding', 'warn')],
        ['Votes', `${pay} pay · ${reject} reject · ${seats.length - pay - reject} not revealed`],
        ['Commits / reveals', `${jury.commits} / ${jury.reveals}`],
        ['Commit until', formatTime(jury.commit_end_ms)],
        ['Reveal until', formatTime(jury.reveal_end_ms)],
      ]), jury.rounds && jury.rounds.length ? [h('h3', {}, 'Rounds'),
        table(['Round', {text: 'Jurors', class: 'num'}, {text: 'Commits', class: 'num'},
          {text: 'Reveals', class: 'num'}, {text: 'Pay', class: 'num'}, 'Outcome'],
        jury.rounds.map((round) => h('tr', {},
          h('td', {}, String(round.round)), h('td', {class: 'num'}, formatInt(round.jurors)),
          h('td', {class: 'num'}, formatInt(round.commits)),
          h('td', {class: 'num'}, formatInt(round.reveals)),
          h('td', {class: 'num'}, formatInt(round.pay_votes)),
          h('td', {}, String(round.outcome).replace(/_/g, ' ')))), {id: 'jury-rounds'})] : null,
      h('h3', {}, `Jurors of round ${jury.round}`),
      table(['Juror', 'Committed', 'Vote'], seats.map((seat) => h('tr', {},
        h('td', {}, memberLink(seat.member_id)),
        h('td', {}, seat.committed ? 'yes' : 'no'),
        h('td', {}, seat.vote ? statusBadge(seat.vote) : h('span', {class: 'muted'}, '—')))),
      {id: 'jury-seats'}));
    }

    const history = card('History', h('ol', {class: 'timeline'}, (claim.history || []).map(
      (entry) => h('li', {}, `${formatTime(entry.time_ms)} — ${entry.event.replace(/_/g, ' ')}`))));

    show(token, `Claim ${claim.claim_id}`,
      h('h1', {}, `Claim #${claim.claim_id} `, statusBadge(claim.status)),
      h('div', {class: 'columns'},
        h('div', {}, card('Claim', fieldsTable(claim, CLAIM_FIELDS)), reviewCard, history),
        h('div', {}, reusedCard, evidence, objections, juryCard)));
  }

  const SETTLEMENT_FIELDS = ['period', 'boundary_ms', 'claims', 'payouts_fen', 'fee_fen',
    'carry_in_fen', 'total_fen', 'members', 'share_fen', 'carry_fen', 'cum_index_fen'];

  async function renderSettlement(token, period) {
    needPlan();
    const settlement = (await api(`/settlements/${period}`)).value;
    const number = Number(period);
    const fields = SETTLEMENT_FIELDS.filter((key) => key !== 'period');
    show(token, `Settlement ${period}`, h('h1', {}, `Settlement of period ${period}`),
      h('div', {class: 'nav-row'},
        number > 1 ? link(`#/settlement/${number - 1}`, `← period ${number - 1}`) : h('span'),
        link(`#/settlement/${number + 1}`, `period ${number + 1} →`)),
      card('Cost sharing', fieldsTable(settlement, fields, null, {id: 'settlement'}),
        h('p', {class: 'muted small'}, 'total = payouts + fee + carry in; every active member ' +
          'owes the share; the remainder carries into the next period.')));
  }

  // --- search ------------------------------------------------------------------------------

  function go(hash) {
    location.replace(hash);
  }

  async function renderSearch(token, query) {
    const text = query.trim();
    const lower = text.toLowerCase().replace(/^0x/, '');
    let match = text.match(/^(?:claim\s*#?|c|#)\s*(\d{1,19})$/i);
    if (match) return go(`#/claim/${match[1]}`);
    match = text.match(/^(?:settlement|period|s)\s*(\d{1,19})$/i);
    if (match) return go(`#/settlement/${match[1]}`);
    match = text.match(/^(?:block|height|h)?\s*(\d{1,19})$/i);
    if (match) {
      const number = Number(match[1]);
      const status = await api('/status');
      const totals = isPlan() ? await planTotals() : null;
      const options = [];
      if (number >= 1 && number <= status.height) options.push([`#/block/${number}`, `Block ${number}`]);
      if (totals && number >= 1 && number <= totals.claims_total) {
        options.push([`#/claim/${number}`, `Claim #${number}`]);
      }
      if (options.length === 1) return go(options[0][0]);
      return show(token, 'Search', h('h1', {}, `Search: ${text}`), card(null, options.length
        ? h('ul', {class: 'plain', id: 'search-results'}, options.map(([href, label]) =>
          h('li', {}, link(href, label))))
        : h('p', {id: 'search-results'}, `No block or claim ${number} on this chain yet.`)));
    }
    if (isHex(lower, 32)) {
      const answer = await api(`/txs/${lower}`);
      if (answer.status !== 'unknown') return go(`#/tx/${lower}`);
      if (isPlan() && window.crypto && crypto.subtle) {
        // Maybe a member's public key: member ids are the first 16 bytes of its SHA-256.
        const memberId = bytesToHex((await sha256(hexToBytes(lower))).slice(0, 16));
        try {
          await api(`/members/${memberId}`);
          return go(`#/member/${memberId}`);
        } catch (error) {
          if (!(error instanceof ApiError) || error.status !== 404) throw error;
        }
      }
      return show(token, 'Search', h('h1', {}, 'Not found'), card(null,
        h('p', {id: 'search-results'}, 'No transaction with this id, and no member with this ' +
          'public key, on this node.')));
    }
    if (isHex(lower, 16)) return go(`#/member/${lower}`);
    return show(token, 'Search', h('h1', {}, 'Search'), card(null,
      h('p', {id: 'search-results'}, 'Search for a block height (123), a transaction id ' +
        '(64 hex digits), a member id (32 hex digits) or public key, a claim (#7) or a ' +
        'settlement period (period 3).')));
  }

  // --- start -------------------------------------------------------------------------------

  document.getElementById('search').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = document.getElementById('search-input');
    const text = input.value.trim();
    if (!text) return;
    input.blur();
    location.hash = `#/search/${encodeURIComponent(text)}`;
  });

  window.addEventListener('hashchange', route);

  async function start() {
    setLive(false);
    liveBadge.textContent = 'connecting';
    try {
      const genesis = await loadGenesis();
      const status = await api('/status');
      document.getElementById('node-name').textContent =
        `${status.name || `node ${status.node_id}`} · chain ${genesis.chain_id}`;
    } catch (error) {
      // The route below shows the error.
    }
    connectEvents();
    route();
  }

  // The checks the pages rely on, for anyone who wants to re-run them from the console
  // (and for the tests, which compare them with the node's own Python implementation).
  window.huzhuExplorer = Object.freeze({
    verifyInclusion: async (leafHex, index, size, pathHex, rootHex) => verifyInclusion(
      hexToBytes(leafHex), index, size, pathHex.map(hexToBytes), hexToBytes(rootHex)),
    headerHash,
  });

  start();
})();
