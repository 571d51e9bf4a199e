// Live arrival in the inbox (issue 12): a SPOC acts on alerts within 24 hours (DIP
// Operational Handbook 4.1.3, 4.11.3), so a message that arrives while the inbox is open
// is added to its table and read out, without a reload. The page works without this
// script: reloading shows the same rows, built by the same template macro (inbox_row).
//
// The stream is /console/inbox/stream, the API's inbox stream behind the console's
// session (server-sent events). Everything is built with DOM methods and textContent,
// never markup from the stream, and no inline script or style (the page's CSP).

const table = document.querySelector('table[data-inbox-live]')

function tag (text, colour) {
  const strong = document.createElement('strong')
  strong.className = colour ? `govuk-tag govuk-tag--${colour}` : 'govuk-tag'
  strong.textContent = text
  return strong
}

function cell (...children) {
  const td = document.createElement('td')
  td.className = 'govuk-table__cell'
  for (const child of children) {
    td.append(child)
  }
  return td
}

// The same cells as the inbox_row macro in templates/inbox_macros.html.
function row (message) {
  const tr = document.createElement('tr')
  tr.className = 'govuk-table__row'
  tr.id = `message-${message.id}`
  const link = document.createElement('a')
  link.className = 'govuk-link'
  link.href = message.href
  link.textContent = message.type
  const first = message.escalated
    ? cell(link, document.createElement('br'), tag('Escalated', 'red'))
    : cell(link)
  const clock = message.clock
    ? cell(tag(message.clock.tag, message.clock.colour), ` ${message.clock.words}`)
    : cell('No deadline')
  tr.append(first, cell(message.sender), cell(message.received),
    cell(tag(message.state, message.state_colour)), clock)
  return tr
}

function listen (table) {
  const body = table.querySelector('tbody')
  const status = document.getElementById('inbox-live-status')
  const stopped = document.getElementById('inbox-live-stopped')
  const empty = document.getElementById('inbox-empty')
  const source = new EventSource(table.dataset.inboxLive)
  source.addEventListener('message', (event) => {
    const message = JSON.parse(event.data)
    if (typeof message.href !== 'string' || !message.href.startsWith('/console/messages/')) {
      return
    }
    if (document.getElementById(`message-${message.id}`)) {
      return // already shown (a reconnect resumes after the last event, but be sure)
    }
    body.append(row(message))
    table.hidden = false
    if (empty) {
      empty.hidden = true
    }
    status.textContent = message.announcement
  })
  source.addEventListener('error', () => {
    // The browser reconnects by itself unless the stream is gone for good (signed out,
    // session ended): then say so, rather than leave a page that looks live.
    if (source.readyState === EventSource.CLOSED) {
      stopped.hidden = false
    }
  })
}

if (table && 'EventSource' in window) {
  listen(table)
}
