// A small, safe markdown renderer for the dashboard. It never parses HTML: the input is
// split into blocks and inline spans and every piece of text becomes a DOM text node, so
// `<img src=x onerror=alert(1)>` in a task shows up as those characters, never as an element.
// Supported: headings, paragraphs with line breaks, fenced and indented code, block quotes,
// bullet and numbered lists, horizontal rules, `code`, **bold**, *italic*, ~~strike~~,
// [links](https://…) and bare http(s) URLs. Links are kept only for http:, https:, mailto:
// and same-site relative URLs.
'use strict';
(function () {
  function el(tag, cls) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    return e;
  }

  function safeHref(url) {
    const u = url.trim();
    if (/^(https?:|mailto:)/i.test(u)) return u;
    if (/^(\/(?!\/)|#)/.test(u)) return u;
    return null;
  }

  // Inline patterns, tried at each position; the earliest match wins.
  const INLINE = [
    { re: /`([^`\n]+)`/, make: (m) => { const c = el('code'); c.textContent = m[1]; return c; } },
    { re: /\*\*([^*\n][^\n]*?)\*\*/, make: (m) => wrap('strong', m[1]) },
    { re: /__([^_\n][^\n]*?)__/, make: (m) => wrap('strong', m[1]) },
    { re: /~~([^~\n]+)~~/, make: (m) => wrap('del', m[1]) },
    { re: /\*([^*\s][^*\n]*?)\*/, make: (m) => wrap('em', m[1]) },
    { re: /(^|[^\w])_([^_\s][^_\n]*?)_(?!\w)/, lead: 1, make: (m) => wrap('em', m[2]) },
    {
      re: /\[([^\]\n]+)\]\(([^)\s]+)\)/,
      make: (m) => {
        const href = safeHref(m[2]);
        if (!href) return document.createTextNode(m[0]);
        const a = el('a');
        a.href = href;
        a.rel = 'noopener noreferrer';
        a.target = '_blank';
        inline(m[1], a);
        return a;
      },
    },
    {
      re: /https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/,
      make: (m) => {
        const a = el('a');
        a.href = m[0];
        a.rel = 'noopener noreferrer';
        a.target = '_blank';
        a.textContent = m[0];
        return a;
      },
    },
  ];

  function wrap(tag, text) {
    const e = el(tag);
    inline(text, e);
    return e;
  }

  // Append the inline rendering of `text` to `parent`.
  function inline(text, parent) {
    let rest = text;
    let guard = 0;
    while (rest.length && guard++ < 10000) {
      let best = null;
      for (const p of INLINE) {
        const m = p.re.exec(rest);
        if (!m) continue;
        const lead = p.lead ? m[p.lead].length : 0;
        const at = m.index + lead;
        if (!best || at < best.at) best = { p, m, at, lead };
      }
      if (!best) {
        parent.appendChild(document.createTextNode(rest));
        return;
      }
      if (best.at > 0) parent.appendChild(document.createTextNode(rest.slice(0, best.at)));
      parent.appendChild(best.p.make(best.m));
      rest = rest.slice(best.m.index + best.m[0].length);
    }
  }

  function paragraph(lines, parent) {
    const p = el('p');
    lines.forEach((l, i) => {
      if (i) p.appendChild(el('br'));
      inline(l, p);
    });
    parent.appendChild(p);
  }

  // Render markdown `src` into a DocumentFragment.
  function render(src) {
    const frag = document.createDocumentFragment();
    const lines = String(src == null ? '' : src).replace(/\r\n?/g, '\n').split('\n');
    let i = 0;
    let para = [];
    const flush = () => {
      if (para.length) paragraph(para, frag);
      para = [];
    };
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if ((m = /^\s*(```|~~~)\s*([\w+-]*)\s*$/.exec(line))) {
        flush();
        const fence = m[1];
        const code = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence)) code.push(lines[i++]);
        i++;
        const pre = el('pre');
        const c = el('code');
        if (m[2]) c.dataset.lang = m[2];
        c.textContent = code.join('\n');
        pre.appendChild(c);
        frag.appendChild(pre);
        continue;
      }
      if (/^\s*$/.test(line)) {
        flush();
        i++;
        continue;
      }
      if ((m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line))) {
        flush();
        const h = el('h' + Math.min(6, m[1].length + 2));
        inline(m[2], h);
        frag.appendChild(h);
        i++;
        continue;
      }
      if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
        flush();
        frag.appendChild(el('hr'));
        i++;
        continue;
      }
      if (/^ {4}|^\t/.test(line) && !para.length) {
        const code = [];
        while (i < lines.length && (/^ {4}|^\t/.test(lines[i]) || /^\s*$/.test(lines[i]))) {
          code.push(lines[i].replace(/^ {4}|^\t/, ''));
          i++;
        }
        while (code.length && !code[code.length - 1].trim()) code.pop();
        const pre = el('pre');
        const c = el('code');
        c.textContent = code.join('\n');
        pre.appendChild(c);
        frag.appendChild(pre);
        continue;
      }
      if (/^\s*>/.test(line)) {
        flush();
        const quoted = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*>\s?/, ''));
        const bq = el('blockquote');
        bq.appendChild(render(quoted.join('\n')));
        frag.appendChild(bq);
        continue;
      }
      if ((m = /^\s*([-*+]|\d{1,9}[.)])\s+/.exec(line))) {
        flush();
        const ordered = /\d/.test(m[1]);
        const list = el(ordered ? 'ol' : 'ul');
        if (ordered) {
          const start = parseInt(m[1], 10);
          if (start !== 1) list.start = start;
        }
        const itemRe = ordered ? /^\s*\d{1,9}[.)]\s+(.*)$/ : /^\s*[-*+]\s+(.*)$/;
        while (i < lines.length) {
          const im = itemRe.exec(lines[i]);
          if (!im) {
            // Continuation lines (indented) belong to the previous item.
            if (/^\s{2,}\S/.test(lines[i]) && list.lastChild) {
              list.lastChild.appendChild(el('br'));
              inline(lines[i].trim(), list.lastChild);
              i++;
              continue;
            }
            break;
          }
          const li = el('li');
          const task = /^\[([ xX])\]\s+(.*)$/.exec(im[1]);
          if (task) {
            const box = el('input');
            box.type = 'checkbox';
            box.disabled = true;
            box.checked = task[1] !== ' ';
            li.appendChild(box);
            li.appendChild(document.createTextNode(' '));
            inline(task[2], li);
          } else {
            inline(im[1], li);
          }
          list.appendChild(li);
          i++;
        }
        frag.appendChild(list);
        continue;
      }
      para.push(line);
      i++;
    }
    flush();
    return frag;
  }

  window.HKMarkdown = { render, safeHref };
})();
