// Reference firmware for the lnn-control RC car: LNC serial line protocol, version 1.
// Protocol: lnn_control/runtime/hardware/SERIAL_PROTOCOL.md. Behaviour matches the emulator
// (python -m lnn_control.runtime.emulators.car): CRC-8/SMBUS, sequence check, ack per accepted
// line, 20 Hz telemetry, drive expiry after FAILSAFE_MS, latched e-stop button cleared by 'R'.
//
// Wiring (adapt to your car): steering servo on pin 9, ESC on pin 10 (both 1000..2000 us pulses,
// 1500 us neutral), e-stop push button to GND on pin 2, battery divider on A0, wheel encoder on
// pin 3 (interrupt, PULSES_PER_M pulses per metre).

#include <Servo.h>

static const uint8_t PROTOCOL_VERSION = 1;
static const unsigned long BAUD = 115200;
static const unsigned long FAILSAFE_MS = 250;
static const unsigned long TELEMETRY_MS = 50;
static const uint8_t PIN_STEER = 9, PIN_ESC = 10, PIN_ESTOP = 2, PIN_ENCODER = 3;
static const float PULSES_PER_M = 400.0f;
static const float BATTERY_MV_PER_COUNT = 14.66f;  // 5 V ADC behind a 3:1 divider
static const size_t MAX_LINE = 80;  // bytes including the '\n' (the protocol's limit)

static const uint8_t FLAG_ESTOP = 1, FLAG_FAILSAFE = 2;

enum Mode { IDLE, DRIVING, STOPPED, FAILSAFE, ESTOP };

Servo steer, esc;
char line[MAX_LINE + 1];
size_t lineLen = 0;
bool discarding = false;
Mode mode = IDLE;
int steerMilli = 0, throttleMilli = 0;
long lastGoodSeq = -1;
unsigned long lastValidRx = 0, lastDrive = 0, lastTelemetry = 0, lastSpeedSample = 0;
uint16_t txSeq = 0;
bool estopLatched = false;
volatile unsigned long encoderPulses = 0;
float speedMps = 0.0f;

uint8_t crc8(const char *data, size_t n) {
  uint8_t crc = 0;
  for (size_t i = 0; i < n; ++i) {
    crc ^= (uint8_t)data[i];
    for (uint8_t b = 0; b < 8; ++b) crc = (crc & 0x80) ? (uint8_t)((crc << 1) ^ 0x07) : (uint8_t)(crc << 1);
  }
  return crc;
}

void sendBody(const char *body) {
  char out[MAX_LINE + 1];
  uint8_t crc = crc8(body, strlen(body));
  snprintf(out, sizeof(out), "$%s*%02X\n", body, crc);
  Serial.write(out);
  txSeq++;
}

void sendAck(long seq) {
  char body[48];
  snprintf(body, sizeof(body), "LNC,%u,%u,A,%ld", PROTOCOL_VERSION, txSeq, seq);
  sendBody(body);
}

void sendError(const char *code, long refSeq) {
  char body[48];
  snprintf(body, sizeof(body), "LNC,%u,%u,E,%s,%ld,%ld", PROTOCOL_VERSION, txSeq, code, refSeq, lastGoodSeq);
  sendBody(body);
}

void sendTelemetry() {
  char body[64];
  long batteryMv = (long)(analogRead(A0) * BATTERY_MV_PER_COUNT);
  int flags = (estopLatched ? FLAG_ESTOP : 0) | (mode == FAILSAFE ? FLAG_FAILSAFE : 0);
  snprintf(body, sizeof(body), "LNC,%u,%u,T,%d,%d,%ld,%ld,%d", PROTOCOL_VERSION, txSeq, steerMilli,
           throttleMilli, (long)(speedMps * 1000.0f), batteryMv, flags);
  sendBody(body);
}

void applyOutputs() {
  if (mode != DRIVING) steerMilli = throttleMilli = 0;
  steer.writeMicroseconds(1500 + steerMilli / 2);
  esc.writeMicroseconds(1500 + throttleMilli / 2);
}

bool seqIsNewer(long seq, long last) {
  long diff = (seq - last) & 0xFFFF;
  return diff > 0 && diff < 32768;
}

// Parses a decimal integer field: '-'? digit+ (no '+', spaces or empty fields: what the host
// accepts); magnitudes beyond 10^9 saturate there (out of every range, no overflow).
bool parseInt(const char *text, long *value) {
  bool negative = *text == '-';
  const char *p = negative ? text + 1 : text;
  if (*p == '\0') return false;
  long v = 0;
  for (; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return false;
    v = v < 100000000L ? v * 10 + (*p - '0') : 1000000000L;
  }
  *value = negative ? -v : v;
  return true;
}

// One upper-case hex digit's value, or -1.
int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void handleLine(char *raw, size_t n) {
  if (n > 0 && raw[n - 1] == '\r') raw[--n] = '\0';
  char *star = strrchr(raw, '*');
  if (n < 4 || raw[0] != '$' || star == NULL || (size_t)(raw + n - star) != 3) return sendError("FMT", -1);
  int high = hexDigit(star[1]), low = hexDigit(star[2]);
  if (high < 0 || low < 0) return sendError("FMT", -1);
  if (high * 16 + low != crc8(raw + 1, star - raw - 1)) return sendError("CRC", -1);
  *star = '\0';
  char *fields[8];  // split on ',' keeping empty fields (a trailing ',' is malformed)
  int count = 0;
  for (char *p = raw + 1; p != NULL && count < 8; ++count) {
    fields[count] = p;
    p = strchr(p, ',');
    if (p != NULL) *p++ = '\0';
  }
  long version, seq;
  if (count < 4 || strcmp(fields[0], "LNC") != 0 || !parseInt(fields[1], &version)) return sendError("FMT", -1);
  if (version != PROTOCOL_VERSION) return sendError("VER", -1);
  if (!parseInt(fields[2], &seq) || seq < 0 || seq > 65535) return sendError("FMT", -1);
  if (lastGoodSeq >= 0 && !seqIsNewer(seq, lastGoodSeq)) return sendError("SEQ", seq);
  char type = strlen(fields[3]) == 1 ? fields[3][0] : '?';  // '?': unknown, answered FMT below
  unsigned long now = millis();
  if (type == 'D') {
    long s, t;
    if (count != 6 || !parseInt(fields[4], &s) || !parseInt(fields[5], &t)) return sendError("FMT", seq);
    if (s < -1000 || s > 1000 || t < -1000 || t > 1000) return sendError("RNG", seq);
    if (estopLatched) return sendError("EST", seq);  // refused: not accepted, lastGoodSeq unchanged
    mode = DRIVING;
    steerMilli = (int)s;
    throttleMilli = (int)t;
    lastDrive = now;
  } else if (type == 'S' && count == 4) {
    mode = STOPPED;
  } else if (type == 'R' && count == 4) {
    if (digitalRead(PIN_ESTOP) == LOW) return sendError("EST", seq);  // button still held
    estopLatched = false;
    mode = IDLE;
  } else if (!(type == 'H' && count == 4)) {
    return sendError("FMT", seq);
  }
  lastGoodSeq = seq;
  lastValidRx = now;
  applyOutputs();
  sendAck(seq);
}

void onEncoder() { encoderPulses++; }

void setup() {
  Serial.begin(BAUD);
  steer.attach(PIN_STEER);
  esc.attach(PIN_ESC);
  pinMode(PIN_ESTOP, INPUT_PULLUP);
  pinMode(PIN_ENCODER, INPUT_PULLUP);
  attachInterrupt(digitalPinToInterrupt(PIN_ENCODER), onEncoder, RISING);
  applyOutputs();  // neutral from the first moment
}

void loop() {
  while (Serial.available() > 0) {
    char c = (char)Serial.read();
    if (c == '\n') {
      if (!discarding) { line[lineLen] = '\0'; handleLine(line, lineLen); }
      lineLen = 0;
      discarding = false;
    } else if (!discarding) {
      if (lineLen >= MAX_LINE - 1) { discarding = true; lineLen = 0; }  // no room left for '\n'
      else line[lineLen++] = c;
    }
  }
  unsigned long now = millis();
  if (digitalRead(PIN_ESTOP) == LOW) {  // latched until 'R'
    estopLatched = true;
    mode = ESTOP;
  }
  if (mode == DRIVING && now - lastDrive > FAILSAFE_MS) mode = FAILSAFE;  // heartbeats do not renew
  if (lastGoodSeq >= 0 && now - lastValidRx > FAILSAFE_MS) lastGoodSeq = -1;  // accept a restarted host
  applyOutputs();
  if (now - lastSpeedSample >= 50) {
    noInterrupts();
    unsigned long pulses = encoderPulses;
    encoderPulses = 0;
    interrupts();
    float direction = throttleMilli < 0 ? -1.0f : 1.0f;
    speedMps = direction * pulses / PULSES_PER_M / ((now - lastSpeedSample) / 1000.0f);
    lastSpeedSample = now;
  }
  if (now - lastTelemetry >= TELEMETRY_MS) {
    lastTelemetry = now;
    sendTelemetry();
  }
}
