// The console works without JavaScript; this only enhances. The GOV.UK template sets
// these classes with an inline script, which the Content-Security-Policy forbids here.
import { initAll } from '/console/static/govuk/govuk-frontend.min.js'

document.body.classList.add('js-enabled')
if ('noModule' in HTMLScriptElement.prototype) {
  document.body.classList.add('govuk-frontend-supported')
}
initAll()
