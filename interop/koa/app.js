'use strict'

// The Koa2 tutorial's session demo (koa-session-minimal backed by
// koa-mysql-session), kept as the tutorial has it so the Go interop test
// talks to the real stack. Only the database settings and the listen
// address differ: they come from the environment, and the server binds
// loopback alone because the test never needs more.

const Koa = require('koa')
const session = require('koa-session-minimal')
const MysqlSession = require('koa-mysql-session')

const env = process.env

const port = Number(env.KOA_PORT || 3000)

const store = new MysqlSession({
  host: env.MYSQL_HOST || '127.0.0.1',
  port: Number(env.MYSQL_PORT || 3306),
  user: env.MYSQL_USER || 'root',
  password: env.MYSQL_PASSWORD || '',
  database: env.MYSQL_DATABASE || 'test'
})

// The tutorial lists every cookie option and leaves each one an empty
// string; that is not the same as leaving them out (for example no Path
// and no HttpOnly attribute are sent), so it is kept as it is.
const cookie = {
  maxAge: '',
  expires: '',
  path: '',
  domain: '',
  httpOnly: '',
  overwrite: '',
  secure: '',
  sameSite: '',
  signed: ''
}

const app = new Koa()

app.use(session({
  key: 'SESSION_ID',
  store: store,
  cookie: cookie
}))

app.use(async (ctx) => {
  if (ctx.url === '/set') {
    ctx.session = {
      user_id: Math.random().toString(36).substr(2),
      count: 0
    }
    ctx.body = ctx.session
  } else if (ctx.url === '/') {
    ctx.session.count = ctx.session.count + 1
    ctx.body = ctx.session
  }
})

// koa-mysql-session creates its table in the background without telling
// anyone when it is done, so a request sent right after listen could find
// no table. The readiness line is printed only once the table answers,
// giving whoever starts this app one line to wait for.
const tableReady = (done, triesLeft) => {
  const probe = store.getConnection().query('SELECT 1 FROM `_mysql_session_store` LIMIT 0')
  probe((err) => {
    if (!err) return done()
    if (triesLeft <= 0) throw err
    setTimeout(() => tableReady(done, triesLeft - 1), 100)
  })
}

app.listen(port, '127.0.0.1', () => {
  tableReady(() => {
    console.log(`listening on http://127.0.0.1:${port}`)
  }, 100)
})
