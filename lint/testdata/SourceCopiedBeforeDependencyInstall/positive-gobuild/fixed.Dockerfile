FROM golang:1.26
WORKDIR /src
COPY go.mod ./
RUN go mod download
COPY . .
RUN go build -o /app .
