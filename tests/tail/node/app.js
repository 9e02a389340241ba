// An Express-like service as the tutorial's are: pino for its own logs, pino-http for requests.
// Writes to the file named by argv[2], serves three requests to itself, then exits.
'use strict'
const http = require('node:http')
const pino = require('pino')
const pinoHttp = require('pino-http')

const logger = pino({ name: 'api' }, pino.destination({ dest: process.argv[2], sync: true }))
const httpLogger = pinoHttp({ logger })

const server = http.createServer((req, res) => {
  httpLogger(req, res)
  if (req.url.startsWith('/boom')) {
    res.err = new Error('handler failed')
    res.statusCode = 500
    return res.end('no')
  }
  res.statusCode = req.url.startsWith('/users') ? 200 : 404
  res.end('ok')
})

server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address()
  logger.info({ port }, 'listening')
  for (const path of ['/users?id=7', '/missing', '/boom']) {
    await fetch(`http://127.0.0.1:${port}${path}`, { headers: { 'user-agent': 'tail-test/1' } })
  }
  logger.error({ err: new TypeError('bad input') }, 'validation failed')
  server.close()
})
